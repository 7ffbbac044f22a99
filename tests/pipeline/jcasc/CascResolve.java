// JCasC's secret resolution, with the real Apache commons-text StringSubstitutor (Debian's libcommons-text-java)
// configured exactly as configuration-as-code does (plugin/src/main/java/io/jenkins/plugins/casc/
// SecretSourceResolver.java and FixedInterpolatorStringLookup.java, jenkinsci/configuration-as-code-plugin at
// 58646eb, 2026-08): the lookups base64, fileBase64/readFileBase64, file/readFile (UTF-8), decodeBase64, trim
// (StringUtils.stripEnd); anything else goes to the secret sources (here the environment, as EnvSecretSource);
// escape '^', substitution in variable names on, escapes preserved; then a second pass that turns what is
// left unresolved into "" or, with CASC_STRICT_SECRET_RESOLUTION=true, aborts.
// (sysProp and json lookups are left out: the project's casc files use neither.)
//
// Input on stdin: one configuration value per line, base64-encoded. Output: per line "OK <base64 result>" or
// "ERR <base64 message>". Run: java -cp /usr/share/java/commons-text.jar:/usr/share/java/commons-lang3.jar
// CascResolve.java (a single-file program; tests/pipeline/test_jcasc_secrets.py).
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.commons.lang3.StringUtils;
import org.apache.commons.text.StringSubstitutor;
import org.apache.commons.text.lookup.StringLookup;

public class CascResolve {
    static String readFile(String key) {
        try {
            return new String(Files.readAllBytes(Paths.get(key)), StandardCharsets.UTF_8);
        } catch (IOException | InvalidPathException e) {
            return null;
        }
    }

    static String readFileBase64(String key) {
        try {
            return Base64.getEncoder().encodeToString(Files.readAllBytes(Paths.get(key)));
        } catch (IOException | InvalidPathException e) {
            return null;
        }
    }

    /** FixedInterpolatorStringLookup: "prefix:name" to the prefix's lookup, else (or when it gives null) the default. */
    static final class Interpolator implements StringLookup {
        private final Map<String, StringLookup> lookups = new HashMap<>();
        private final StringLookup fallback;

        Interpolator(Map<String, StringLookup> map, StringLookup fallback) {
            map.forEach((k, v) -> lookups.put(k.toLowerCase(Locale.ROOT), v));
            this.fallback = fallback;
        }

        @Override
        public String lookup(String var) {
            if (var == null) {
                return null;
            }
            int colon = var.indexOf(':');
            if (colon >= 0) {
                StringLookup lookup = lookups.get(var.substring(0, colon).toLowerCase(Locale.ROOT));
                String value = lookup == null ? null : lookup.lookup(var.substring(colon + 1));
                if (value != null) {
                    return value;
                }
            }
            return fallback.lookup(var);
        }
    }

    public static void main(String[] args) throws IOException {
        Map<String, StringLookup> map = new HashMap<>();
        map.put("base64", key -> Base64.getEncoder().encodeToString(key.getBytes(StandardCharsets.UTF_8)));
        map.put("fileBase64", CascResolve::readFileBase64);
        map.put("readFileBase64", CascResolve::readFileBase64);
        map.put("file", CascResolve::readFile);
        map.put("readFile", CascResolve::readFile);
        map.put("decodeBase64", key -> new String(Base64.getDecoder().decode(key.getBytes(StandardCharsets.UTF_8)),
                StandardCharsets.UTF_8));
        map.put("trim", key -> StringUtils.stripEnd(key, null));
        StringSubstitutor substitutor = new StringSubstitutor(new Interpolator(map, System::getenv))
                .setEscapeChar('^')
                .setVariablePrefix("${")
                .setVariableSuffix("}")
                .setEnableSubstitutionInVariables(true)
                .setPreserveEscapes(true);
        boolean strict = Boolean.parseBoolean(System.getenv("CASC_STRICT_SECRET_RESOLUTION"));
        StringSubstitutor nullSubstitutor = new StringSubstitutor((StringLookup) key -> {
                    if (strict) {
                        throw new IllegalStateException(
                                String.format("Unable to resolve variable '%s'. Aborting configuration reload.", key));
                    }
                    return "";
                })
                .setEscapeChar('^')
                .setVariablePrefix("${")
                .setVariableSuffix("}");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Base64.Encoder out = Base64.getEncoder();
        String line;
        while ((line = in.readLine()) != null) {
            String value = new String(Base64.getDecoder().decode(line), StandardCharsets.UTF_8);
            try {
                String result = value;
                if (!StringUtils.isBlank(value) && value.contains("${")) {
                    result = nullSubstitutor.replace(substitutor.replace(value));
                }
                System.out.println("OK " + out.encodeToString(result.getBytes(StandardCharsets.UTF_8)));
            } catch (RuntimeException e) {
                System.out.println("ERR " + out.encodeToString(String.valueOf(e.getMessage()).getBytes(StandardCharsets.UTF_8)));
            }
        }
    }
}

"""Secret files, read the same way by every party of the release path.

Three programs read the same secret: the sender (our release-trigger workflow, or GitHub from the value typed
into the webhook form), this receiver, and Jenkins, whose configuration-as-code reads its copy with
`${trim:${readFile:FILE}}`: the file decoded as UTF-8, then trailing whitespace stripped (Java's
Character.isWhitespace). An `echo SECRET > FILE` newline, a CRLF from an editor, or bytes that are not UTF-8
(Jenkins turns them into U+FFFD) would otherwise make the parties hold different keys, and every delivery fail
HMAC on one side only.

So the rule is narrow enough that every party reads the same bytes or refuses: UTF-8 text; trailing ASCII
whitespace (what Java strips in that range) is dropped; what remains must be hex or base64 text
(`openssl rand -hex 32`, `openssl rand -base64 32`) that does not start with '-': JCasC reads `${trim:-abc}` as
the variable `trim` with the default `abc`, so a leading dash would be lost on the Jenkins side only. The
release-trigger workflow applies the same rule to the GitHub secret before it signs.
"""

from __future__ import annotations

import re
from pathlib import Path

from release_receiver.errors import ConfigError

# ASCII characters Java's Character.isWhitespace accepts (JCasC's trim strips these at the end).
TRAILING_WHITESPACE = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
# Hex is a subset; '+/' and '-_' cover standard and URL-safe base64, '=' its padding.
SECRET_TEXT = re.compile(r"[0-9A-Za-z+/=_-]+")
HOW_TO = "write it as hex or base64 text, e.g. `openssl rand -hex 32 > FILE`"


def parse_secret(data: bytes, source: str) -> bytes:
    """The key bytes of a secret file's content, or a ConfigError naming `source` and what is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: the secret is not UTF-8 text (byte {exc.start}): Jenkins would read other bytes; {HOW_TO}"
        ) from None
    secret = text.rstrip(TRAILING_WHITESPACE)
    if not secret:
        raise ConfigError(f"{source}: the secret file is empty")
    bad = next((c for c in secret if not SECRET_TEXT.fullmatch(c)), None)
    if bad is not None:
        raise ConfigError(
            f"{source}: the secret must be hex or base64 text; it holds {bad!r} at character {secret.index(bad) + 1}"
            f" (only a trailing newline or spaces are dropped); {HOW_TO}"
        )
    if secret.startswith("-"):
        raise ConfigError(
            f"{source}: the secret must not start with '-' (Jenkins' ${{trim:...}} would drop it); {HOW_TO}"
        )
    return secret.encode("ascii")


def read_secret(path: Path) -> bytes:
    """Read and check one secret file (see the module's docstring)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the secret: {exc.strerror or exc}") from None
    return parse_secret(data, str(path))

"""What a shard's pod runs before the shard, as init containers (Python from the evaluator image: it has no
shell): the run-guard (a results folder belongs to one image) and the wait for the stack's vLLM."""

from __future__ import annotations

from factory.evaluator_pods import evaluator_container
from factory.objects import Manifest
from factory.settings import StackSettings

# Before any shard starts: the results folder of a run id belongs to one image. A run id rendered again with
# another image must not resume (and so report as its own) the shards the first image finished. The first
# pod records its image atomically (link of a complete temp file), every pod compares; a mismatch exits 2,
# which the podFailurePolicy turns into FailJob at once. Python from the evaluator image: it has no shell.
RUN_GUARD_SCRIPT = """\
import os, sys, tempfile
out, image, run = os.environ["EVAL_OUT_DIR"], os.environ["EVAL_IMAGE"], os.environ["EVAL_RUN_ID"]
marker = os.path.join(out, "run-image")
try:
    os.makedirs(out, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out, prefix=".run-image.")
except PermissionError as exc:
    root = os.path.dirname(out.rstrip("/")) or "/"
    st = os.stat(root)
    print(f"{exc.filename or out}: not writable by uid {os.getuid()} (gid {os.getgid()}); the results volume's root is "
          f"owned by {st.st_uid}:{st.st_gid} with mode {oct(st.st_mode & 0o7777)}. Some ReadWriteMany classes (CephFS, "
          f"Filestore, plain NFS) ignore fsGroup: give the volume's root to gid {os.getgid()} (group-writable) or "
          f"provision it so (pulumi/README.md, 'Storage').", file=sys.stderr)
    sys.exit(2)
with os.fdopen(fd, "w") as handle:
    handle.write(image + "\\n")
    handle.flush()
    os.fsync(handle.fileno())
try:
    os.link(temp, marker)
except FileExistsError:
    pass
finally:
    os.unlink(temp)
with open(marker) as handle:
    recorded = handle.read().strip()
if recorded != image:
    print(f"{marker}: run {run} was evaluated by image {recorded}; this pod runs another image, {image}: its "
          f"finished shards would be reported as this image's. Render the run with a new --run-id, or delete "
          f"{out} from the results volume first.", file=sys.stderr)
    sys.exit(2)
print(f"{marker}: run {run}, image {image}")
"""


def run_guard_container(s: StackSettings, env: list[Manifest]) -> Manifest:
    command = ["python", "-c", RUN_GUARD_SCRIPT]
    return evaluator_container(s, "run-guard", command, env, suite_volume=False, helper=True)


# Before a shard starts: the stack's vLLM answers /health (a first rollout downloads and loads the model for many
# minutes). Without this, every shard would burn its retries on connection errors (exit 4, backoffLimitPerIndex);
# with it, a pod waits, bounded by eval.healthWaitSeconds, and then fails once with a clear message (exit 4).
WAIT_SCRIPT = """\
import os, sys, time, urllib.request
urls, budget = os.environ["EVAL_WAIT_URLS"].split(), float(os.environ["EVAL_WAIT_SECONDS"])
deadline = time.monotonic() + budget
for url in urls:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    print(f"{url}: healthy", flush=True)
                    break
        except OSError as exc:
            why = exc
        if time.monotonic() > deadline:
            print(f"{url}: not healthy after {budget:.0f}s (eval.healthWaitSeconds): {why}", file=sys.stderr)
            sys.exit(4)
        print(f"{url}: waiting ({why})", flush=True)
        time.sleep(5)
"""


def health_urls(s: StackSettings) -> list[str]:
    """The stack's own vLLM (every run's default target): its /health, outside /v1, so no API key is needed."""
    return [s.vllm_base_url.removesuffix("/v1") + "/health"]


def wait_container(s: StackSettings) -> list[Manifest]:
    """The init container that waits for the servers, or nothing (eval.healthWaitSeconds: 0)."""
    urls = health_urls(s)
    if not urls or s.eval.health_wait_seconds == 0:
        return []
    env = [
        {"name": "EVAL_WAIT_URLS", "value": " ".join(urls)},
        {"name": "EVAL_WAIT_SECONDS", "value": str(s.eval.health_wait_seconds)},
        {"name": "HOME", "value": "/tmp"},
    ]
    command = ["python", "-c", WAIT_SCRIPT]
    container = evaluator_container(s, "wait-for-servers", command, env, suite_volume=False, helper=True)
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    return [container]

# Shared by scripts/test and scripts/serve: find or install uv, then the locked environment.
# Sourced, not run.

# The uv release that scripts install when none is on PATH; any uv >= 0.9 reads uv.lock.
EVENT_BRIDGE_UV_VERSION=0.13.9

ensure_uv() {
    if command -v uv >/dev/null 2>&1; then
        return
    fi
    if [ ! -x .tools/bin/uv ]; then
        echo "uv not found: installing uv $EVENT_BRIDGE_UV_VERSION into .tools/ (once)" >&2
        if ! python3 -m venv .tools || ! .tools/bin/pip install --quiet "uv==$EVENT_BRIDGE_UV_VERSION"; then
            echo "error: could not install uv; install it yourself (pip install uv) and try again" >&2
            exit 1
        fi
    fi
    PATH="$PWD/.tools/bin:$PATH"
}

ensure_environment() {
    ensure_uv
    # --inexact: keep the bench group if it is installed, so a test run never
    # pulls packages from under a benchmark running beside it.
    uv sync --frozen --inexact --quiet
}

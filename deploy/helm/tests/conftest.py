"""Prints how long each value set took to render (Helm v4 through helm-python-sdk)."""

RENDER_SECONDS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if not RENDER_SECONDS:
        return
    terminalreporter.write_sep("-", "chart render times (helm-python-sdk, Helm v4)")
    for name, seconds in sorted(RENDER_SECONDS.items()):
        terminalreporter.write_line(f"{name:24s} {seconds * 1000:8.1f} ms")

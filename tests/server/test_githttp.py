"""``serve_git``: the real git CLI cloning, fetching and pushing through ``git http-backend`` over a real uvicorn.

The app under test is a few lines: a bearer check, then ``serve_git``. It runs on uvicorn in
a thread, on a socket that listens before the server starts, so the tests (plain blocking
``git`` commands) need not wait for it to come up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gangline.server.githttp import read_head, serve_git
from kits.helpers import alive, commit_file, git, new_repo

SECRET = "secret"
AUTH = ("-c", f"http.extraHeader=Authorization: Bearer {SECRET}")
ALLOW_CHECKED_OUT = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "receive.denyCurrentBranch",
    "GIT_CONFIG_VALUE_0": "ignore",
}
_NOT_INHERITED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_CONFIG_COUNT")
CLIENT_ENV = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED} | {
    "GIT_TERMINAL_PROMPT": "0",  # a 401 fails instead of asking for a password
    "GIT_AUTHOR_NAME": "Client",
    "GIT_AUTHOR_EMAIL": "client@example.com",
    "GIT_COMMITTER_NAME": "Client",
    "GIT_COMMITTER_EMAIL": "client@example.com",
}
BOUND_S = 30  # every wait here is bounded by this


class Seen:
    """What the app was asked: each request's method, path and the headers that choose how git reads the body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def note(self, request: Request) -> None:
        wanted = ("content-length", "content-encoding", "transfer-encoding", "git-protocol")
        headers = {name: request.headers[name] for name in wanted if name in request.headers}
        self.requests.append((request.method, request.url.path, headers))


def git_app(repo: Path, env: Mapping[str, str], seen: Seen | None = None) -> Starlette:
    """``/git/{path}`` -> ``serve_git(repo)``, for holders of the bearer secret only."""

    async def endpoint(request: Request) -> Response:
        """401 without the secret, else whatever git answers."""
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return PlainTextResponse("a bearer credential is required\n", status_code=401)
        if seen is not None:
            seen.note(request)
        return await serve_git(request, repo, "/" + request.path_params["path"], env)

    return Starlette(routes=[Route("/git/{path:path}", endpoint, methods=["GET", "POST"])])


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` on a real uvicorn in a thread at a free loopback port: yields the URL of its ``/git`` mount."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # clients may connect at once: they wait in the backlog until uvicorn accepts
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/git"
    finally:
        server.should_exit = True
        thread.join(BOUND_S)
        sock.close()
    assert not thread.is_alive()


def client_git(cwd: Path, *args: str, auth: bool = True) -> subprocess.CompletedProcess[str]:
    """The git CLI as a person runs it against the server (with the bearer header unless ``auth`` is False)."""
    return subprocess.run(
        ["git", *(AUTH if auth else ()), "-c", "credential.helper=", *args],
        cwd=cwd,
        env=CLIENT_ENV,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        stdin=subprocess.DEVNULL,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a git that succeeded (else its stderr, as the failure)."""
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A work tree on ``main`` (checked out) with three commits, and ``feature`` one commit further."""
    repo = new_repo(tmp_path / "served", ("a.txt", "1\n", "one"), ("b.txt", "2\n", "two"), ("c.txt", "3\n", "three"))
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "f.txt", "feature\n", "feature work")
    git(repo, "checkout", "-q", "main")
    yield repo
    assert _serving_processes(repo) == [], "git processes outlived their request"


def _serving_processes(repo: Path) -> list[int]:
    """Live processes (zombies have no environment) started by serve_git for ``repo``."""
    mark = f"GIT_PROJECT_ROOT={repo}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue  # gone, or not ours
    return found


def clone(url: str, into: Path) -> Path:
    """``git clone url into``, which must succeed."""
    ok(client_git(into.parent, "clone", "-q", url, into.name))
    return into


def push_new_commit(clone_dir: Path, ref: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Commit a new file in ``clone_dir`` and push HEAD to ``ref``: git's answer and the commit's sha."""
    sha = commit_file(clone_dir, f"new-{len(list(clone_dir.iterdir()))}.txt", "new\n", "from the clone")
    return client_git(clone_dir, "push", "origin", f"HEAD:{ref}", *extra), sha


# --- clone, fetch, push ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_a_clone_has_every_branch_and_commit(served: Path, tmp_path: Path, protocol: str) -> None:
    seen = Seen()
    with serving(git_app(served, {}, seen)) as url:
        ok(client_git(tmp_path, "-c", f"protocol.version={protocol}", "clone", "-q", url, "copy"))
    copy = tmp_path / "copy"
    for branch in ("main", "feature"):
        assert git(copy, "rev-parse", f"origin/{branch}") == git(served, "rev-parse", branch)
    assert git(copy, "log", "--format=%s", "origin/feature").splitlines() == ["feature work", "three", "two", "one"]
    assert (copy / "c.txt").read_text() == "3\n"
    assert any(h.get("git-protocol") == "version=2" for _, _, h in seen.requests) is (protocol == "2")


def test_a_push_with_a_current_lease_moves_the_branch_and_a_stale_lease_is_refused(
    served: Path, tmp_path: Path
) -> None:
    with serving(git_app(served, {})) as url:
        copy = clone(url, tmp_path / "copy")
        git(copy, "checkout", "-q", "feature")
        seen_sha = git(copy, "rev-parse", "origin/feature")
        pushed, sha = push_new_commit(copy, "refs/heads/feature", f"--force-with-lease=refs/heads/feature:{seen_sha}")
        ok(pushed)
        assert git(served, "rev-parse", "feature") == sha

        stale, _ = push_new_commit(copy, "refs/heads/feature", f"--force-with-lease=refs/heads/feature:{seen_sha}")
        assert stale.returncode != 0 and "stale info" in stale.stderr
        assert git(served, "rev-parse", "feature") == sha


def test_a_large_chunked_push_and_a_gzipped_fetch_negotiation_arrive_whole(served: Path, tmp_path: Path) -> None:
    seen = Seen()
    with serving(git_app(served, {}, seen)) as url:
        copy = clone(url, tmp_path / "copy")
        # Incompressible and over http.postBuffer (1 MiB): git sends it chunked, with no Content-Length.
        (copy / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
        git(copy, "add", "big.bin")
        git(copy, "commit", "-q", "-m", "big")
        ok(client_git(copy, "push", "origin", "HEAD:refs/heads/big"))
        assert git(served, "rev-parse", "big") == git(copy, "rev-parse", "HEAD")
        assert git(served, "cat-file", "-s", "big:big.bin") == str(3 * 1024 * 1024)

        # 150 commits the server lacks: the fetch's "have" lines pass 1 KiB, which git gzips.
        _local_history(copy, "main", 150)
        news = commit_file(served, "news.txt", "news\n", "news on the server")
        ok(client_git(copy, "fetch", "-q", "origin", "main"))
        assert git(copy, "rev-parse", "origin/main") == news
    posts = [h for method, _, h in seen.requests if method == "POST"]
    assert any("content-length" not in h and h.get("transfer-encoding") == "chunked" for h in posts)
    assert any(h.get("content-encoding") == "gzip" for h in posts)


def _local_history(repo: Path, start: str, count: int) -> None:
    """``count`` commits on a new local branch from ``start``, made in one ``git fast-import``.

    They are dated in the future, so git's negotiation offers them (unknown to the server) first.
    """
    stream = [f"reset refs/heads/local\nfrom {git(repo, 'rev-parse', start)}\n"]
    stream += [
        f"commit refs/heads/local\ncommitter C <c@example.com> {4_000_000_000 + n} +0000\ndata 2\n{n % 10}\n"
        for n in range(count)
    ]
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input="".join(stream), text=True, check=True)


# --- what env lets a push do -------------------------------------------------------------------


def test_a_branch_checked_out_in_a_linked_worktree_is_pushed_to_only_when_env_allows_it(
    served: Path, tmp_path: Path
) -> None:
    git(served, "worktree", "add", "-q", str(tmp_path / "linked"), "feature")
    before = git(served, "rev-parse", "feature")
    with serving(git_app(served, {})) as url:
        copy = clone(url, tmp_path / "copy")
        git(copy, "checkout", "-q", "feature")
        refused, _ = push_new_commit(copy, "refs/heads/feature")
    assert refused.returncode != 0 and "refusing to update checked out branch" in refused.stderr
    assert git(served, "rev-parse", "feature") == before

    with serving(git_app(served, ALLOW_CHECKED_OUT)) as url:
        git(copy, "remote", "set-url", "origin", url)
        pushed, sha = push_new_commit(copy, "refs/heads/feature")
    ok(pushed)
    assert git(served, "rev-parse", "feature") == sha
    assert git(tmp_path / "linked", "status", "--porcelain") != ""  # "ignore": the ref moved, the files did not


def test_a_pre_receive_hook_given_through_env_decides_which_refs_may_move(served: Path, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        'while read old new ref; do [ "$ref" = "$ALLOWED_REF" ] || { echo "no pushing to $ref" >&2; exit 1; }; done\n'
    )
    hook.chmod(0o755)
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(hooks)}
    with serving(git_app(served, env | {"ALLOWED_REF": "refs/heads/allowed"})) as url:
        copy = clone(url, tmp_path / "copy")
        refused, _ = push_new_commit(copy, "refs/heads/other")
        pushed, sha = push_new_commit(copy, "refs/heads/allowed")
    assert refused.returncode != 0 and "no pushing to refs/heads/other" in refused.stderr
    assert "other" not in git(served, "branch", "--list")
    ok(pushed)
    assert git(served, "rev-parse", "allowed") == sha


def test_without_the_credential_the_clone_fails(served: Path, tmp_path: Path) -> None:
    with serving(git_app(served, {})) as url:
        refused = client_git(tmp_path, "clone", "-q", url, "copy", auth=False)
    assert refused.returncode != 0 and "could not read Username" in refused.stderr  # git asks for one only on a 401
    assert not (tmp_path / "copy").exists()


# --- the CGI answer, failures, and a client that leaves -----------------------------------------


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
async def test_a_cgi_header_block_gives_the_status_and_every_header_and_leaves_the_body(eol: bytes) -> None:
    lines = [b"Status: 404 Not Found", b"Expires: never", b"X-Twice: 1", b"X-Twice: 2", b"", b"the body"]
    stdout = asyncio.StreamReader()
    stdout.feed_data(eol.join(lines))
    stdout.feed_eof()
    assert await read_head(stdout) == (404, [("Expires", "never"), ("X-Twice", "1"), ("X-Twice", "2")])
    assert await stdout.read() == b"the body"


@pytest.mark.parametrize("output", [b"", b"Content-Type: text/plain\r\n", b"no colon\n\nbody", b"Status: OK\n\n"])
async def test_output_without_a_whole_header_block_is_none(output: bytes) -> None:
    stdout = asyncio.StreamReader()
    stdout.feed_data(output)
    stdout.feed_eof()
    assert await read_head(stdout) is None


def test_a_path_git_does_not_serve_is_its_own_404(served: Path) -> None:
    with serving(git_app(served, {})) as url, httpx.Client(timeout=BOUND_S) as http:
        answer = http.get(f"{url}/no/such/thing", headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 404


def test_a_git_that_cannot_start_or_answers_without_headers_is_a_short_500(served: Path, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\necho 'no headers here'\n")
    (fake / "git").chmod(0o755)
    headers = {"Authorization": f"Bearer {SECRET}"}
    for path, reason in [(str(tmp_path / "nowhere"), "cannot start"), (str(fake), "without CGI headers")]:
        with serving(git_app(served, {"PATH": path})) as url, httpx.Client(timeout=BOUND_S) as http:
            answer = http.get(f"{url}/info/refs?service=git-upload-pack", headers=headers)
        assert answer.status_code == 500 and reason in answer.text and "Traceback" not in answer.text


def test_a_client_that_leaves_mid_push_gets_git_and_its_hook_killed_and_reaped(served: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "hook-started"
    os.mkfifo(fifo)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-receive").write_text(f"#!/bin/sh\necho $$ > {fifo}\nexec sleep {BOUND_S * 10}\n")
    (hooks / "pre-receive").chmod(0o755)
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(hooks)}
    with serving(git_app(served, env)) as url, _logged_exits() as exits:
        copy = clone(url, tmp_path / "copy")
        commit_file(copy, "late.txt", "late\n", "never arrives")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        push = subprocess.Popen(
            ["git", *AUTH, "push", "origin", "HEAD:refs/heads/late"],
            cwd=copy, env=CLIENT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            hook_pid = int(_read_line(reader))
        finally:
            os.killpg(push.pid, signal.SIGKILL)  # git and its git-remote-http: the connection drops
            push.wait(BOUND_S)
            os.close(reader)
        assert exits.wait(BOUND_S), "git http-backend was not reaped"
    record = exits.record
    assert record is not None and "killed" in record.getMessage()
    assert exits.pid and not alive(exits.pid) and not alive(hook_pid)
    assert "late" not in git(served, "branch", "--list")


def _read_line(fd: int) -> str:
    """A line from the non-blocking ``fd`` (a FIFO), waiting at most BOUND_S for it."""
    data = b""
    while not data.endswith(b"\n"):
        assert select.select([fd], [], [], BOUND_S)[0], "the hook did not start"
        chunk = os.read(fd, 100)
        assert chunk, "the hook closed the FIFO without a line"
        data += chunk
    return data.decode()


class _Exits(logging.Handler):
    """The first 'exited with' record of ``gangline.server.githttp``, with an event for waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.record: logging.LogRecord | None = None
        self.pid = 0  # of the git http-backend that exited
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "exited with" in str(record.msg) and self.record is None:
            assert isinstance(record.args, tuple)
            self.pid = int(str(record.args[0]))
            self.record = record
            self.seen.set()

    def wait(self, timeout: float) -> bool:
        """Whether the record came within ``timeout`` seconds."""
        return self.seen.wait(timeout)


@contextmanager
def _logged_exits() -> Iterator[_Exits]:
    """An _Exits listening to the module's logger for the duration."""
    logger = logging.getLogger("gangline.server.githttp")
    handler = _Exits()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)

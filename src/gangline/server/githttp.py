"""Git's smart HTTP protocol: one request handed to the real ``git http-backend``, run as a CGI program.

Git implements the protocol itself (clone, fetch, push, protocol v2, gzip-compressed
negotiations), so this module only translates: the request becomes CGI variables and the
process's stdin, and its stdout becomes the response. Nothing is held in memory whole, since
packs can be large: the request body is copied to stdin as it arrives while stdout is read
concurrently, and the body after the CGI header block is streamed out as git writes it.

The process leads its own process group (``upload-pack``, ``pack-objects``, ``receive-pack``
and its hooks join it). It is always reaped: when the output ends, and also when the client
leaves mid-request, in which case the whole group is killed first.

Starlette's own ``StreamingResponse`` cannot be used as it is: on ASGI spec 2.3 servers
(uvicorn) it reads ``receive()`` to notice a disconnect while it streams, which would steal
the pieces of a push's body that arrive after git has written its headers. ``GitResponse``
listens for the disconnect only once the body has been fed to git.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gangline.agents.processes import kill_and_reap, kill_group_now
from gangline.repo.git import git_env

log = logging.getLogger(__name__)

REMOTE_USER = "node"  # http-backend refuses receive-pack to an anonymous user; the caller has authenticated
CHUNK = 64 * 1024  # bytes per read of git's output and per write of the request body
STDERR_KEEP = 4096  # the last bytes of git's stderr kept for the log
HEAD_MAX = 64 * 1024  # a CGI header block is a few hundred bytes; more than this is not one
_REAP_S = 5.0  # how long git may take to exit after its output ends before its group is killed
_DRAIN_S = 1.0  # how long to wait for pipes that a leftover (killed) process may still hold

# Request headers passed on only when the client sent them, each as the variable git reads.
_OPTIONAL = {
    "CONTENT_LENGTH": "content-length",  # absent for a chunked body: git then reads to end of input
    "HTTP_CONTENT_ENCODING": "content-encoding",  # "gzip": http-backend inflates the body itself
    "GIT_PROTOCOL": "git-protocol",  # "version=2"
}

_closing: set[asyncio.Task[None]] = set()  # cleanups under way, kept referenced until they finish


async def serve_git(request: Request, repo: Path, path_info: str, env: Mapping[str, str]) -> Response:
    """Answer one smart-HTTP request for ``repo`` (a work tree with ``.git`` inside, or a bare repository).

    ``path_info`` is the URL after the mount point (``/info/refs``, ``/git-upload-pack``,
    ``/git-receive-pack``); ``env`` goes on top of the CGI environment (git config through
    ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``, variables for hooks).
    Pushes are accepted: the caller authenticates before calling this. A git that cannot start,
    or output without a CGI header block, is a 500 with a one-line reason.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=cgi_env(request, repo, path_info, env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its children and hooks join its group, so one kill reaches them all
        )
    except OSError as exc:
        log.error("cannot start git http-backend for %s: %s", repo, exc)
        return PlainTextResponse("cannot start git http-backend\n", status_code=500)
    backend = Backend(proc, request, f"{request.method} {path_info}")
    try:
        head = await read_head(backend.stdout)
    except BaseException:  # cancelled, most likely: nothing of git's may outlive the request
        await backend.finish(kill=True)
        raise
    if head is None:
        await backend.finish(kill=True)
        return PlainTextResponse("git http-backend answered without CGI headers\n", status_code=500)
    status, headers = head
    return GitResponse(backend, status, headers)


def cgi_env(request: Request, repo: Path, path_info: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``git http-backend``: this server's own, the CGI variables of ``request``, then ``env``.

    Variables that would point git at another repository (``GIT_DIR``, ``GIT_INDEX_FILE``, ...,
    set when the server was started from a hook) are dropped, as for every git gangline runs.
    Request headers other than those in ``_OPTIONAL`` are not passed on: the credential in
    ``Authorization`` must not reach hooks.
    """
    cgi = {
        "GIT_PROJECT_ROOT": str(repo),
        "GIT_HTTP_EXPORT_ALL": "1",  # serve it without a git-daemon-export-ok file
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": f"HTTP/{request.scope.get('http_version', '1.1')}",
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": request.scope.get("query_string", b"").decode("latin-1"),
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": REMOTE_USER,
        "REMOTE_ADDR": request.client.host if request.client else "",
    }
    base = git_env(None)
    for name, header in _OPTIONAL.items():
        base.pop(name, None)  # only the client's own, never one inherited by this server
        if header in request.headers:
            cgi[name] = request.headers[header]
    return base | cgi | dict(env)


async def read_head(stdout: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]] | None:
    """The status and headers of a CGI answer, read up to its blank line; None if it has no header block.

    Lines may end in ``\\r\\n`` or ``\\n``. ``Status: 404 Not Found`` sets the status (200 without
    one); the stream is left at the first byte of the body.
    """
    status, size = 200, 0
    headers: list[tuple[str, str]] = []
    while True:
        try:
            line = await stdout.readline()
        except ValueError:  # a line longer than the reader's limit
            return None
        size += len(line)
        if not line.endswith(b"\n") or size > HEAD_MAX:  # the output ended (or never ends) before the blank line
            return None
        text = line.rstrip(b"\r\n").decode("latin-1")
        if not text:
            return status, headers
        name, colon, value = text.partition(":")
        if not colon or not name.strip():
            return None
        if name.strip().lower() == "status":
            code = value.strip().split(" ", 1)[0]
            if not (code.isdigit() and len(code) == 3):
                return None
            status = int(code)
        else:
            headers.append((name.strip(), value.strip()))


class Backend:
    """One running ``git http-backend``: its process group, the task feeding it the request body, its stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, request: Request, what: str) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.stdout: asyncio.StreamReader = proc.stdout
        self.what = what  # "POST /git-receive-pack", for the log
        self.killed = False
        self.output_ended = False
        self.stderr = b""
        self.feeder = asyncio.create_task(self._feed(request, proc.stdin))
        self.errors = asyncio.create_task(self._collect_stderr(proc.stderr))
        self._closer: asyncio.Task[None] | None = None

    def kill(self) -> None:
        """SIGKILL the whole group now, if git is still running (idempotent)."""
        if self.proc.returncode is None:
            kill_group_now(self.proc.pid)
            self.killed = True

    async def _feed(self, request: Request, stdin: asyncio.StreamWriter) -> None:
        """Copy the request body to git's stdin chunk by chunk as it arrives, then close stdin (the body's end).

        A git that stops reading (it answered early, or died) ends the copy: its output says why.
        A client that leaves mid-body gets git killed.
        """
        try:
            async for chunk in request.stream():
                if chunk:
                    stdin.write(chunk)
                    await stdin.drain()
        except ClientDisconnect:
            self.kill()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            stdin.close()

    async def _collect_stderr(self, stderr: asyncio.StreamReader) -> None:
        """Read git's stderr to its end, keeping the last STDERR_KEEP bytes (it must be read, or git could block)."""
        while chunk := await stderr.read(CHUNK):
            self.stderr = (self.stderr + chunk)[-STDERR_KEEP:]

    async def body(self) -> AsyncGenerator[bytes, None]:
        """The rest of git's stdout, as it comes."""
        while chunk := await self.stdout.read(CHUNK):
            yield chunk
        self.output_ended = True

    async def watch(self, receive: Receive) -> None:
        """Kill git if the client leaves before its output has ended.

        Only once the body has been fed: until then the feeder owns ``receive()``, and a
        disconnect reaches it as ClientDisconnect.
        """
        await asyncio.wait([self.feeder])
        while (await receive())["type"] != "http.disconnect":
            pass  # the rest of a body git stopped reading
        if not self.output_ended:
            self.kill()

    async def finish(self, kill: bool) -> None:
        """Reap git (killing its group first when ``kill``) and log a failure; safe to call more than once.

        The work runs in its own task, shielded: a second cancellation of the caller cannot leave
        a process unreaped.
        """
        if kill:
            self.kill()  # now, before any await
        if self._closer is None:
            self._closer = asyncio.create_task(self._reap())
            _closing.add(self._closer)
            self._closer.add_done_callback(_closing.discard)
        await asyncio.shield(self._closer)

    async def _reap(self) -> None:
        """Wait for git to exit (killing its group after _REAP_S), then for its pipes, then log how it ended."""
        try:
            await asyncio.wait_for(self.proc.wait(), _REAP_S)
        except TimeoutError:
            self.kill()
            await kill_and_reap(self.proc, _REAP_S)
        except BaseException:  # cancelled: the event loop is closing; git must not run on without us
            self.kill()
            await kill_and_reap(self.proc, _REAP_S)
            raise
        self.feeder.cancel()  # a client still sending to a git that is gone
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._discard_stdout(), _DRAIN_S)  # so the pipe's transport closes
        await asyncio.wait([self.feeder, self.errors], timeout=_DRAIN_S)
        self.errors.cancel()  # held open by some escaped process: log what there is
        for task in (self.feeder, self.errors):
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("git http-backend %s: %r", self.what, task.exception())
        code = self.proc.returncode
        if code != 0:
            why = " (killed: the client left or the output ended early)" if self.killed else ""
            stderr = self.stderr.decode(errors="replace").strip()
            log.warning(
                "git http-backend (pid %d) %s exited with %s%s: %s", self.proc.pid, self.what, code, why, stderr
            )

    async def _discard_stdout(self) -> None:
        """Read what is left of stdout (after a kill), so the end of the pipe is seen."""
        while await self.stdout.read(CHUNK):
            pass


class GitResponse(StreamingResponse):
    """The body of git's CGI answer, streamed; git is killed if the client leaves, and reaped in every case."""

    def __init__(self, backend: Backend, status_code: int, headers: list[tuple[str, str]]) -> None:
        self.backend = backend
        self.output = backend.body()
        super().__init__(self.output, status_code=status_code)
        for name, value in headers:  # appended one by one: a header may repeat
            self.headers.append(name, value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the body while watching for the client to leave; then reap git, however this ended."""
        watcher = asyncio.create_task(self.backend.watch(receive))
        ended = False
        try:
            await self.stream_response(send)
            ended = True
        finally:
            watcher.cancel()
            await self.output.aclose()
            await self.backend.finish(kill=not ended)

"""A small stand-in for the model APIs the real agent CLIs call, on 127.0.0.1 only.

It speaks the Anthropic messages API (streaming SSE, what `claude` uses through
ANTHROPIC_BASE_URL) and the OpenAI Responses API (what `codex` uses through a custom
model provider). Its `mode` says how it answers every model call:

- "edit": the first call asks for a file to be written (a tool call), the next one, which
  carries the tool's result, ends the turn with a final message;
- "401": an authentication error; "429": a rate limit with retry-after; "529": overloaded.

Every request is counted per path, so a test can tell how often an agent tried.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FINAL_TEXT = "Wrote hello.txt as asked."
FILE_NAME = "hello.txt"
FILE_TEXT = "hello from the agent\n"


# What a planner asks kugetsu to run ("plan" mode): a task for another agent.
PLANNED_TASK = {"prompt": "write the changelog for the release", "agent": "worker", "no_worktree": True}


@dataclass
class MockState:
    mode: str = "edit"
    retry_after: int = 40  # seconds, sent with 429
    requests: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _working_dir(body: dict[str, Any]) -> str:
    """The agent's working directory as its system prompt states it."""
    text = json.dumps(body.get("system", "")) + json.dumps(body.get("instructions", ""))
    text += json.dumps(body.get("input", "")) + json.dumps(body.get("messages", ""))
    m = re.search(r"(?:Primary working directory|Working directory|<cwd>|cwd)\W+(/[^\s\"\\<]+)", text)
    return m.group(1) if m else "/tmp"


def _has_tool_result(body: dict[str, Any]) -> bool:
    text = json.dumps(body.get("messages", "")) + json.dumps(body.get("input", ""))
    return '"tool_result"' in text or '"function_call_output"' in text


class Handler(BaseHTTPRequestHandler):
    server_version = "mock-api/1"
    state: MockState  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        for name, payload in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        self.state.requests[self.path.split("?")[0]] += 1
        if self.path.startswith("/v1/models") or self.path.startswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
            return
        self._json(404, {"error": {"type": "not_found", "message": "no such path"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size) if size else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with self.state.lock:
            self.state.requests[path] += 1
            self.state.bodies.append({"path": path, **body} if isinstance(body, dict) else {"path": path})
        mode = self.state.mode
        anthropic = path.endswith("/messages") or "/messages" in path
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 10})
            return
        if mode == "401":
            if anthropic:
                # As the real API answers a bad key: not worth retrying.
                self._json(
                    401,
                    {
                        "type": "error",
                        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                    },
                    {"x-should-retry": "false"},
                )
            else:
                self._json(
                    401,
                    {
                        "error": {
                            "message": "Incorrect API key provided: sk-bad.",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    },
                )
            return
        if mode == "429":
            headers = {"retry-after": str(self.state.retry_after)}
            if anthropic:
                headers["anthropic-ratelimit-requests-reset"] = "2030-01-01T00:00:00Z"
                self._json(
                    429,
                    {
                        "type": "error",
                        "error": {
                            "type": "rate_limit_error",
                            "message": "Number of requests has exceeded your rate limit",
                        },
                    },
                    headers,
                )
            else:
                self._json(
                    429,
                    {
                        "error": {
                            "message": "Rate limit reached for requests",
                            "type": "requests",
                            "code": "rate_limit_exceeded",
                        }
                    },
                    headers,
                )
            return
        if mode == "529":
            self._json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        if anthropic:
            self._anthropic(body)
        elif path.endswith("/responses"):
            self._responses(body)
        elif path.endswith("/chat/completions"):
            self._chat(body)
        else:
            self._json(404, {"error": {"type": "not_found", "message": f"no such path {path}"}})

    # --- Anthropic messages ---------------------------------------------------------

    def _anthropic(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", "mock-model"))
        usage = {
            "input_tokens": 120,
            "output_tokens": 30,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        tools = [str(t.get("name")) for t in body.get("tools", []) or []]
        # In "plan" mode the model delegates: one call of kugetsu's add_task over MCP.
        delegate = (
            next((t for t in tools if t.endswith("__add_task")), None) if self.state.mode == "plan" else None
        )
        edit = not _has_tool_result(body) and (delegate is not None or "Write" in tools)
        if edit and delegate is not None:
            content: dict[str, Any] = {"type": "tool_use", "id": "toolu_mock1", "name": delegate, "input": {}}
            arguments = json.dumps(PLANNED_TASK)
            stop = "tool_use"
        elif edit:
            path = f"{_working_dir(body)}/{FILE_NAME}"
            content = {"type": "tool_use", "id": "toolu_mock1", "name": "Write", "input": {}}
            arguments = json.dumps({"file_path": path, "content": FILE_TEXT})
            stop = "tool_use"
        else:
            content = {"type": "text", "text": ""}
            stop = "end_turn"
        if not body.get("stream"):
            block = dict(content)
            if edit:
                block["input"] = json.loads(arguments)
            else:
                block["text"] = FINAL_TEXT
            self._json(
                200,
                {
                    "id": "msg_mock",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [block],
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_mock",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            },
        }
        if edit:
            delta = {"type": "input_json_delta", "partial_json": arguments}
        else:
            delta = {"type": "text_delta", "text": FINAL_TEXT}
        self._sse(
            [
                ("message_start", start),
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": content},
                ),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 30},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )

    # --- OpenAI Responses -----------------------------------------------------------

    def _responses(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", "mock-model"))
        tools = [t.get("name") or t.get("type") for t in body.get("tools", []) or []]
        edit = not _has_tool_result(body)
        usage = {
            "input_tokens": 200,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 240,
        }
        if edit and "apply_patch" in tools:
            patch = f"*** Begin Patch\n*** Add File: {FILE_NAME}\n+{FILE_TEXT.rstrip()}\n*** End Patch\n"
            item: dict[str, Any] = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "apply_patch",
                "arguments": json.dumps({"input": patch}),
                "status": "completed",
            }
        elif edit and ("shell" in tools or "exec_command" in tools):
            name = "shell" if "shell" in tools else "exec_command"
            args = (
                {"command": ["sh", "-c", f"printf '{FILE_TEXT.rstrip()}\\n' > {FILE_NAME}"]}
                if name == "shell"
                else {"cmd": f"printf '{FILE_TEXT.rstrip()}\\n' > {FILE_NAME}"}
            )
            item = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": name,
                "arguments": json.dumps(args),
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}],
            }
        response = {
            "id": "resp_mock",
            "object": "response",
            "created_at": 1,
            "model": model,
            "status": "completed",
            "output": [item],
            "usage": usage,
        }
        events = [
            (
                "response.created",
                {"type": "response.created", "response": {**response, "status": "in_progress", "output": []}},
            ),
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            ),
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": item},
            ),
            ("response.completed", {"type": "response.completed", "response": response}),
        ]
        self._sse(events)

    # --- OpenAI chat completions (opencode's openai-compatible provider) -------------

    def _chat(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", "mock-model"))
        tools = [t.get("function", {}).get("name") for t in body.get("tools", []) or []]
        edit = (
            "tool" not in json.dumps([m.get("role") for m in body.get("messages", [])]) and "write" in tools
        )
        base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model}
        if edit:
            path = f"{_working_dir(body)}/{FILE_NAME}"
            delta: dict[str, Any] = {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "write",
                            "arguments": json.dumps({"filePath": path, "content": FILE_TEXT}),
                        },
                    }
                ],
            }
            finish = "tool_calls"
        else:
            delta = {"role": "assistant", "content": FINAL_TEXT}
            finish = "stop"
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 150, "completion_tokens": 25, "total_tokens": 175},
            },
        ]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class MockAPI:
    """The server on 127.0.0.1 (a free port), run in a thread until stop()."""

    def __init__(self, mode: str = "edit") -> None:
        self.state = MockState(mode=mode)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MockAPI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def model_calls(self) -> int:
        return sum(
            n
            for p, n in self.state.requests.items()
            if p.endswith(("/messages", "/responses", "/chat/completions"))
        )


if __name__ == "__main__":  # python -m tests.mock_api.server MODE: serve until interrupted
    import sys

    api = MockAPI(sys.argv[1] if len(sys.argv) > 1 else "edit")
    print(api.url, flush=True)
    api.httpd.serve_forever()

"""Items, predictions and project admins for the monitoring tests."""

import hashlib
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.contrib.auth import get_user_model

from annotator.models import Item, Membership, Prediction

PASSWORD = "correct horse battery"


def add_items(project, texts, **meta) -> list[Item]:
    return [
        Item.objects.create(project=project, raw_text=text, text=text, meta=dict(meta),
                            content_hash=hashlib.sha256(f"{project.pk}{text}".encode()).hexdigest())
        for text in texts
    ]


_counter = iter(range(10**9))


def add_predicted(project, version, labels, **meta) -> list[Item]:
    """One new item per label, predicted by `version` with that label."""
    items = add_items(project, [f"review {next(_counter)}" for _ in labels], **meta)
    for item, label in zip(items, labels, strict=True):
        Prediction.objects.create(item=item, model_version=version, label=label,
                                  probabilities=[0.2, 0.3, 0.5], uncertainty=0.5)
    return items


def project_admin(project, username="pam"):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return user


class Receiver(ThreadingHTTPServer):
    """A local webhook receiver on 127.0.0.1 that records each request and answers with
    `status` (and `reason`, `headers`, `body`); `tls`: (certificate, key) files for HTTPS,
    the SNI name it was called with in `server_names`. A context manager: serving inside."""

    def __init__(self, status: int = 200, *, reason: str | None = None, headers=(),
                 body: bytes = b"ok", tls: tuple | None = None):
        self.requests: list[tuple[dict, bytes]] = []
        self.server_names: list[str | None] = []
        self.scheme = "https" if tls else "http"

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):  # noqa: N805
                length = int(handler.headers["Content-Length"])
                self.requests.append((dict(handler.headers), handler.rfile.read(length)))
                handler.send_response(status, reason)
                for name, value in headers:
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

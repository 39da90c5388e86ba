"""Webhooks reach public addresses only (annotator/lib/webhook_targets.py): loopback, private,
link-local, multicast, reserved and unspecified targets are refused however spelled, when a
rule is saved (API, admin) and again at delivery on the address the host resolves to then,
and the POST goes to that checked address. An allow-list lets an internal receiver through;
what a receiver answers is never stored."""

import shutil
import socket
import subprocess

import pytest
from django.urls import reverse

from annotator import tasks
from annotator.lib import webhook_targets
from annotator.models import Alert, AlertRule, WebhookDelivery
from annotator.services.monitoring import webhook_deliver
from tests.annotator.monitoring_helpers import Receiver, project_admin
from tests.annotator.serving_helpers import token_client

PUBLIC = "93.184.215.14"  # a global address; nothing is sent there (the tests refuse first)
REFUSED = "webhooks go to public addresses only"


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def fast(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    settings.WEBHOOK_MAX_ATTEMPTS = 1


class FakeDns:
    """Answers for the names a test resolves itself: `answers[name]` is a list of address
    lists, one per lookup (the last one stays; none: the name is not known). Other hosts go
    to the real resolver; `calls` lists the faked lookups."""

    def __init__(self):
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []

    def __setitem__(self, name: str, answers: list[list[str]]) -> None:
        self.answers[name] = answers

    def getaddrinfo(self, real, host, port, *args, **kwargs):
        if host not in self.answers:
            return real(host, port, *args, **kwargs)
        self.calls.append(host)
        answers = self.answers[host]
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]


@pytest.fixture
def dns(monkeypatch):
    fake, real = FakeDns(), socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *args, **kwargs: fake.getaddrinfo(real, *args, **kwargs))
    return fake


def _deliver(project, url: str) -> WebhookDelivery:
    rule = AlertRule.objects.create(project=project, name="spike", label="negative",
                                    threshold=0.5, window=4, webhook_url=url)
    alert = Alert.objects.create(rule=rule, project=project, share=0.75, items=4)
    tasks.deliver_webhook_task.apply(args=[alert.pk])
    return WebhookDelivery.objects.get(alert=alert)


# --- at delivery ---------------------------------------------------------------------------

LOCAL_SPELLINGS = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://127.1:{port}/hook",
    "http://2130706433:{port}/hook",         # decimal
    "http://0177.0.0.1:{port}/hook",         # octal
    "http://0x7f.0.0.1:{port}/hook",         # hexadecimal
    "http://[::ffff:127.0.0.1]:{port}/hook",  # IPv4-mapped IPv6
    "http://0.0.0.0:{port}/hook",            # unspecified: Linux connects it to this host
    "http://user@127.0.0.1:{port}/hook",
    "http://[::1]:{port}/hook",
]


@pytest.mark.parametrize("template", LOCAL_SPELLINGS)
def test_the_local_receiver_gets_no_call_however_its_address_is_spelled(project, receiver,
                                                                        fast, template):
    delivery = _deliver(project, template.format(port=receiver.port))
    assert receiver.requests == []
    assert REFUSED in delivery.error
    assert (delivery.status_code, delivery.delivered, delivery.retry_in) == (None, False, None)


@pytest.mark.parametrize("url, kind", [
    ("http://10.0.0.1/hook", "a private address"),
    ("http://192.168.1.20/hook", "a private address"),
    ("http://172.16.0.1/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
    ("http://[fe80::1]/hook", "a link-local address"),
    ("http://[fd00::1]/hook", "a private address"),
    ("http://224.0.0.1/hook", "a multicast address"),
    ("http://240.0.0.1/hook", "a reserved address"),
    ("http://100.64.0.1/hook", "not a public address"),  # carrier-grade NAT
])
def test_private_link_local_multicast_and_reserved_targets_are_refused(project, fast, url, kind):
    delivery = _deliver(project, url)
    assert kind in delivery.error and REFUSED in delivery.error


def test_a_name_that_resolves_to_loopback_is_refused(project, receiver, fast, dns):
    dns["hooks.example"] = [["127.0.0.1"]]
    delivery = _deliver(project, f"http://hooks.example:{receiver.port}/hook")
    assert receiver.requests == []
    assert delivery.error.startswith("hooks.example resolves to a loopback address")
    assert "127.0.0.1" not in delivery.error  # a name's address is not shown


def test_one_bad_address_among_the_answers_refuses_the_name(project, receiver, fast, dns):
    dns["hooks.example"] = [[PUBLIC, "127.0.0.1"]]
    delivery = _deliver(project, f"http://hooks.example:{receiver.port}/hook")
    assert receiver.requests == [] and REFUSED in delivery.error


def test_a_name_public_when_saved_and_loopback_at_delivery_is_refused(project, receiver, fast,
                                                                       dns):
    """DNS rebinding: the check at delivery is on what the name resolves to then."""
    dns["hooks.example"] = [[PUBLIC], ["127.0.0.1"]]
    url = f"http://hooks.example:{receiver.port}/hook"
    assert webhook_targets.url_problem(url) == ""  # saved: public
    delivery = _deliver(project, url)
    assert receiver.requests == [] and REFUSED in delivery.error


def test_the_post_goes_to_the_address_that_was_checked(project, receiver, fast, dns, settings):
    """Resolved once: a second answer (here an unroutable private address) is never asked
    for, and the receiver sees the name in the Host header."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.0/8"]
    dns["hooks.example"] = [["127.0.0.1"], ["10.255.255.1"]]
    delivery = _deliver(project, f"http://hooks.example:{receiver.port}/hook")
    assert delivery.delivered, delivery.error
    [(headers, _)] = receiver.requests
    assert headers["Host"] == f"hooks.example:{receiver.port}"
    assert dns.calls == ["hooks.example"]


@pytest.mark.parametrize("allowed", [["127.0.0.1"], ["127.0.0.0/8"], ["localhost"],
                                     ["LOCALHOST", " "]])
def test_the_allow_list_lets_a_local_receiver_through(project, receiver, fast, settings,
                                                     allowed):
    settings.WEBHOOK_ALLOWED_HOSTS = allowed
    delivery = _deliver(project, f"http://localhost:{receiver.port}/hook")
    assert delivery.delivered and len(receiver.requests) == 1


def test_an_allow_listed_network_lets_no_other_address_through(project, receiver, fast,
                                                               settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "hooks.internal"]
    delivery = _deliver(project, f"http://127.0.0.1:{receiver.port}/hook")
    assert receiver.requests == [] and REFUSED in delivery.error


def test_a_name_that_does_not_resolve_is_tried_again(project, fast, dns, settings):
    settings.WEBHOOK_MAX_ATTEMPTS, settings.WEBHOOK_RETRY_SECONDS = 3, 30
    dns["hooks.example"] = []  # no address: the resolver's "not known"
    rule = AlertRule.objects.create(project=project, name="spike", label="negative",
                                    threshold=0.5, window=4, webhook_url="http://hooks.example/")
    alert = Alert.objects.create(rule=rule, project=project, share=0.75, items=4)
    assert webhook_deliver(alert_id=alert.pk, attempt=1) == 30
    assert WebhookDelivery.objects.get().error == "cannot resolve hooks.example"


# --- what is kept of an answer ------------------------------------------------------------

def test_only_the_status_and_a_short_reason_are_kept_never_the_body(project, fast, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with Receiver(500, body=b"db password: hunter2") as server:
        delivery = _deliver(project, server.url)
    assert (delivery.status_code, delivery.error) == (500, "Internal Server Error")


def test_a_hostile_reason_phrase_is_cut_and_stripped(project, fast, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with Receiver(418, reason="<b>tea</b>\x1b[31m" + "x" * 200) as server:
        delivery = _deliver(project, server.url)
    assert delivery.status_code == 418
    assert delivery.error == ("<b>tea</b>[31m" + "x" * 200)[:60]


def test_a_redirect_is_logged_not_followed(project, fast, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with Receiver(302, headers=[("Location", "http://169.254.169.254/")]) as server:
        delivery = _deliver(project, server.url)
    assert len(server.requests) == 1
    assert (delivery.status_code, delivery.delivered) == (302, False)


@pytest.fixture
def certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl missing")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.example",
                    "-addext", "subjectAltName=DNS:hooks.example"],
                   check=True, capture_output=True)
    return cert, key


def test_https_to_the_checked_address_keeps_the_name_for_sni_and_the_certificate(
        project, fast, dns, settings, certificate):
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.example"]
    settings.WEBHOOK_CA_BUNDLE = str(certificate[0])
    dns["hooks.example"] = [["127.0.0.1"], ["10.255.255.1"]]
    with Receiver(tls=certificate) as server:
        delivery = _deliver(project, f"https://hooks.example:{server.port}/hook")
        assert delivery.delivered, delivery.error
        assert server.server_names == ["hooks.example"]
        # the certificate is checked against the name: another name fails the handshake
        dns["other.example"] = [["127.0.0.1"]]
        settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.example", "other.example"]
        refused = _deliver(project, f"https://other.example:{server.port}/hook")
    assert refused.error == "TLS error (certificate or handshake)"
    assert len(server.requests) == 1


# --- when a rule is saved ------------------------------------------------------------------

SAVED_REFUSED = ["http://127.0.0.1:8000/hook", "http://localhost/hook", "http://[::1]/hook",
                 "http://10.1.2.3/hook", "http://192.168.0.10/hook",
                 "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/hook",
                 "http://[::ffff:127.0.0.1]/hook", "http://hooks.example/hook"]
NEW_RULE = {"name": "negatives", "label": "negative", "threshold": 0.3, "window": 50}


@pytest.mark.parametrize("url", SAVED_REFUSED + ["http://2130706433/hook", "ftp://x.example/"])
def test_the_api_refuses_a_rule_with_a_local_or_private_target(project, dns, url):
    dns["hooks.example"] = [["127.0.0.1"]]
    client = token_client(project_admin(project))
    response = client.post(f"/api/projects/{project.pk}/alert-rules/",
                           {**NEW_RULE, "webhook_url": url}, format="json")
    assert response.status_code == 400
    assert "webhook_url" in response.json()
    assert not AlertRule.objects.exists()


def test_the_api_refuses_a_change_to_a_local_target(project, dns):
    dns["hooks.example"] = [[PUBLIC]]
    client = token_client(project_admin(project))
    created = client.post(f"/api/projects/{project.pk}/alert-rules/",
                          {**NEW_RULE, "webhook_url": "https://hooks.example/x"}, format="json")
    assert created.status_code == 201, created.content
    url = f"/api/projects/{project.pk}/alert-rules/{created.json()['id']}"
    response = client.patch(url, {"webhook_url": "http://169.254.169.254/"}, format="json")
    assert response.status_code == 400
    assert REFUSED in response.json()["webhook_url"][0]
    assert AlertRule.objects.get().webhook_url == "https://hooks.example/x"


@pytest.mark.parametrize("url", SAVED_REFUSED)
def test_the_admin_refuses_a_rule_with_a_local_or_private_target(admin_client, project, dns,
                                                                 url):
    dns["hooks.example"] = [["127.0.0.1"]]
    response = admin_client.post(reverse("admin:annotator_alertrule_add"), {
        "project": project.pk, **NEW_RULE, "webhook_url": url, "secret": "s" * 64,
        "is_active": "on"})
    assert response.status_code == 200  # the form again, with the error
    assert REFUSED in response.content.decode()
    assert not AlertRule.objects.exists()


def test_the_admin_saves_a_public_target_and_an_allow_listed_one(admin_client, project, dns,
                                                                 settings):
    dns["hooks.example"] = [[PUBLIC]]
    settings.WEBHOOK_ALLOWED_HOSTS = ["receiver.internal"]
    for url in ("https://hooks.example/x", "http://receiver.internal:9000/hook"):
        response = admin_client.post(reverse("admin:annotator_alertrule_add"), {
            "project": project.pk, **NEW_RULE, "name": url, "webhook_url": url,
            "secret": "s" * 64, "is_active": "on"})
        assert response.status_code == 302, response.content.decode()[-2000:]
    assert AlertRule.objects.count() == 2


def test_a_host_that_does_not_resolve_yet_is_saved_and_checked_at_delivery(dns):
    dns["hooks.example"] = []
    assert webhook_targets.url_problem("https://hooks.example/x") == ""

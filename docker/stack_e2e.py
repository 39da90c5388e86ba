"""The stack check's end-to-end run against a running container stack (docker/stack_check.sh
starts it and sets the environment below): docs/api.md's workflow over HTTP only, as a team
would use it, then the training and the scoring container killed mid-work and started again.
One line per step: seconds since the start, the step's own seconds, what it showed.

HTTP does everything (the REST API with the admin's token; the login, invitation, upload and
labeling pages with sessions, as a browser would). The database is only read, to time the
kills and to audit that nothing was lost or done twice; the object store only to read the
scoring plan; docker only kills and starts containers.

Environment: STACK_URL, STACK_TOKEN, STACK_ADMIN_PASSWORD, STACK_COMPOSE (the compose command
line of the stack), STACK_DATABASE_URL, STACK_S3_ENDPOINT, STACK_S3_BUCKET.
"""

import hashlib
import hmac
import html
import io
import json
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import requests

URL = os.environ["STACK_URL"].rstrip("/")
TOKEN = os.environ["STACK_TOKEN"]
ADMIN_PASSWORD = os.environ["STACK_ADMIN_PASSWORD"]
COMPOSE = shlex.split(os.environ["STACK_COMPOSE"])
DATABASE_URL = os.environ["STACK_DATABASE_URL"]
LABELS = ["negative", "neutral", "positive"]
STARTED = time.monotonic()


class CheckFailed(Exception):
    pass


# --- output and waiting -------------------------------------------------------------------

_last = [STARTED]


def step(name: str, detail: str = "") -> None:
    now = time.monotonic()
    print(f"{now - STARTED:7.1f}s {now - _last[0]:+7.1f}s  {name}" + (f": {detail}" if detail
                                                                   else ""), flush=True)
    _last[0] = now


def wait_for(what: str, probe, timeout: float, every: float = 1.0):
    """probe() until it returns something truthy; CheckFailed naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise CheckFailed(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def sql(query: str, *params):
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        return db.execute(query, params).fetchall()


def compose(*args: str) -> str:
    done = subprocess.run([*COMPOSE, *args], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise CheckFailed(f"{' '.join(args)}: {done.stderr.strip()[-500:]}")
    return done.stdout


# --- the reviews this script writes itself ---------------------------------------------------

EN = {
    "negative": ["The {x} broke after two days, very disappointed.",
                 "Terrible {x}, the seams came apart and support never answered.",
                 "Awful {x}: smells of chemicals and the color is wrong. Returning it."],
    "neutral": ["The {x} arrived on Tuesday in a plain box.",
                "It is a {x}. Does what the description says, nothing more.",
                "Ordered the {x} in medium; delivery took five days."],
    "positive": ["Love this {x}, great quality and fast delivery!",
                 "Excellent {x}, fits perfectly and looks even better than the photos.",
                 "Best {x} I have bought this year, highly recommended."],
}
ZH = {
    "negative": ["这个{x}用了两天就坏了，非常失望。", "{x}质量太差了，线头很多，客服也不回复。",
                 "{x}有股怪味，颜色也不对，差评，退货。"],
    "neutral": ["{x}周二到的，包装很普通。", "{x}和描述一样，没有什么特别的。",
                "买了中号的{x}，快递五天到。"],
    "positive": ["非常喜欢这个{x}，质量很好，发货也快！", "{x}很合身，比图片还好看，好评。",
                 "今年买过最好的{x}，强烈推荐。"],
}
THINGS = {"en": ["jacket", "dress", "pair of shoes", "backpack", "scarf", "phone case",
                 "lamp", "kettle", "hoodie", "water bottle"],
          "zh": ["外套", "连衣裙", "鞋子", "背包", "围巾", "手机壳", "台灯", "水壶", "卫衣", "水杯"]}


def review(rng: random.Random, label: str, lang: str) -> str:
    template = rng.choice((EN if lang == "en" else ZH)[label])
    text = template.format(x=rng.choice(THINGS[lang]))
    return text if lang == "zh" else f"{text} (order {rng.randint(1000, 99999)})"


def reviews(n: int, seed: int, product: str, labels=LABELS) -> list[dict]:
    """n distinct reviews, half English, half Chinese, each with its true label."""
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < n:
        label, lang = labels[len(rows) % len(labels)], ("en", "zh")[len(rows) % 2]
        text = review(rng, label, lang) + ("" if lang == "en" else f" #{rng.randint(1, 99999)}")
        if text not in seen:
            seen.add(text)
            rows.append({"external_id": f"{product}-{seed}-{len(rows)}", "text": text,
                         "meta": {"product": product, "lang": lang}, "_label": label})
    return rows


def normal(text: str) -> str:
    """The text as the platform cleans it (NFKC, collapsed spaces): to find its true label."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


# --- HTTP clients ----------------------------------------------------------------------------


def api() -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Token {TOKEN}"
    return s


def browser() -> requests.Session:
    s = requests.Session()
    s.headers["Referer"] = URL + "/"
    return s


def form_post(s: requests.Session, path: str, data: dict, files=None) -> requests.Response:
    """A form POST as the page's own form sends it (with the CSRF token of the cookie)."""
    if "csrftoken" not in s.cookies:
        s.get(f"{URL}/accounts/login/", timeout=30)
    data = {**data, "csrfmiddlewaretoken": s.cookies["csrftoken"]}
    return s.post(path if path.startswith("http") else URL + path, data=data, files=files,
                  allow_redirects=False, timeout=120)


def login(username: str, password: str) -> requests.Session:
    s = browser()
    s.get(f"{URL}/accounts/login/", timeout=30)
    r = form_post(s, "/accounts/login/", {"username": username, "password": password})
    check(r.status_code == 302, f"login of {username} answered {r.status_code}")
    return s


def ok(r: requests.Response, *codes: int) -> requests.Response:
    if r.status_code not in (codes or (200,)):
        raise CheckFailed(f"{r.request.method} {r.url} answered {r.status_code}: {r.text[:300]}")
    return r


# --- the webhook receiver ----------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """Keeps every POST (headers, body) it gets on 127.0.0.1."""

    def __init__(self):
        self.calls: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    s = api()
    ok(s.get(f"{URL}/healthz", timeout=30))
    admin = login("admin", ADMIN_PASSWORD)
    step("stack answers", f"{URL}, admin logged in")

    settings = {"name": f"Stack check {int(time.time())}",
                "labels": [{"name": name} for name in LABELS],
                "retrain_min_new_labels": 0, "retrain_every_minutes": 0}  # no scheduled retrain
    project = ok(s.post(f"{URL}/api/projects/", json=settings, timeout=30), 201).json()
    pid, base = project["id"], f"{URL}/api/projects/{project['id']}"
    step("create project", f"#{pid} with labels {', '.join(LABELS)}")

    labelers = {}
    for name in ("lena", "ming"):
        r = form_post(admin, f"/projects/{pid}/people/invite", {"username": name,
                                                                "role": "labeler"})
        check(r.status_code == 302, f"invite {name}: {r.status_code}")
        page = admin.get(f"{URL}/projects/{pid}/people/", timeout=30).text
        link = html.unescape(re.search(r'class="invitation-link" readonly value="([^"]+)"',
                                       page).group(1))
        # the token is after "#" (no access log sees it); the page's script posts it
        # (static/annotator/invitation.js), with the passwords in the form it then shows
        accept, _, fragment = link.partition("#")
        uidb64, token = fragment.split("/", 1)
        labeler = browser()
        labeler.get(accept, timeout=30)
        password = f"{name}-{random.randrange(10**9)}-pw"
        r = form_post(labeler, accept, {"uidb64": uidb64, "token": token,
                                        "new_password1": password, "new_password2": password})
        check(r.status_code == 302, f"{name} could not accept the invitation: {r.status_code}")
        labelers[name] = labeler
    step("invite two labelers", "lena and ming set their passwords through their links")

    rows = reviews(500, seed=1, product="A")
    truth = {normal(row["text"]): row["_label"] for row in rows}
    body = "".join(json.dumps({k: v for k, v in row.items() if k != "_label"},
                              ensure_ascii=False) + "\n" for row in rows)
    pushed = ok(s.post(f"{base}/items/", data=body.encode(), timeout=120,
                       headers={"Content-Type": "application/x-ndjson"})).json()
    check(pushed["created"] == 500, f"push created {pushed['created']} of 500: {pushed}")
    step("push 500 reviews", "250 English, 250 Chinese: 500 created")

    upload = reviews(40, seed=2, product="B")
    truth.update({normal(row["text"]): row["_label"] for row in upload})
    csv = "text,product\n" + "".join(f"\"{row['text']}\",B\n" for row in upload)
    r = form_post(admin, f"/projects/{pid}/import/", {},
                  files={"file": ("more-reviews.csv", csv.encode(), "text/csv")})
    check(r.status_code == 302, f"upload answered {r.status_code}")
    preview = URL + r.headers["Location"]
    job = int(re.search(r"/import/(\d+)/", preview).group(1))
    r = form_post(admin, preview, {"text_column": "text", "meta_columns": "product",
                                   "split": "pool"})
    check(r.status_code == 302, f"the column mapping answered {r.status_code}: {r.text[:300]}")
    status = wait_for("the import on the default worker", lambda: (lambda j: j if j["finished"]
                      else None)(admin.get(f"{URL}/projects/{pid}/import/{job}/status",
                                           timeout=30).json()), timeout=300)
    check(status["status"] == "succeeded" and status["imported"] == 40,
          f"the uploaded file was not imported: {status}")
    step("upload a CSV on web", "imported by the default worker from the object store: 40 items")

    counts = {name: 0 for name in labelers}
    names = list(labelers)
    for i in range(60):
        name = names[i % 2]
        session = labelers[name]
        item = ok(session.get(f"{URL}/projects/{pid}/label/next", timeout=60)).json()["item"]
        check(item is not None, f"{name} got no item to label")
        label = truth[normal(item["text"])]
        r = session.post(f"{URL}/projects/{pid}/label/submit", timeout=60,
                         data={"item": item["id"], "label": label, "seconds": 3},
                         headers={"X-CSRFToken": session.cookies["csrftoken"]})
        ok(r)
        counts[name] += 1
    step("label 60 reviews", f"lena {counts['lena']}, ming {counts['ming']} through the "
                             "labeling page's endpoints")

    run = ok(s.post(f"{base}/retrain", json={}, timeout=60), 202).json()
    v1 = wait_for("version 1 to become active", lambda: next(
        (v for v in ok(s.get(f"{base}/versions/", timeout=60)).json()
         if v["active"] and v["number"] == 1), None), timeout=1200, every=3)
    step("retrain", f"run {run['run_id']} on the training worker: version 1 active, trained "
                    f"on {v1['label_count']} labels, stored in the object store")
    scored_by(v1["version_id"], "version 1", timeout=900)
    step("pool scored", "the scoring worker scored the pool with version 1 from the object store")

    probe_rows = reviews(6, seed=3, product="C")
    answer = ok(s.post(f"{base}/predict", json={"texts": [r["text"] for r in probe_rows]},
                       timeout=300)).json()
    check(answer["model_version"] == 1, f"predictions came from {answer['model_version']}")
    right = sum(p["label"] == r["_label"] for p, r in zip(answer["predictions"], probe_rows))
    step("read predictions", f"web serves version 1: {right} of 6 new reviews as expected")

    receiver = Receiver()
    rule = ok(s.post(f"{base}/alert-rules/", timeout=30, json={
        "name": "negatives on X", "label": "negative", "threshold": 0.3, "window": 20,
        "meta_field": "product", "meta_value": "X",
        "webhook_url": f"http://127.0.0.1:{receiver.server_port}/hook"}), 201).json()
    bad = reviews(24, seed=4, product="X", labels=["negative"])
    ok(s.post(f"{base}/items/", json=[{k: v for k, v in row.items() if k != "_label"}
                                      for row in bad], timeout=120))
    headers, payload = wait_for("the alert's webhook", lambda: receiver.calls and
                                receiver.calls[0], timeout=600)
    expected = hmac.new(rule["secret"].encode(), payload, hashlib.sha256).hexdigest()
    check(hmac.compare_digest(expected, headers.get("X-Signature-SHA256", "")),
          "the webhook's signature does not match the rule's secret")
    alert = json.loads(payload)
    step("alert fired", f"share of negative on product X {alert['share']:.2f} > 0.3: signed "
                        "webhook received on 127.0.0.1")

    lines = ok(s.get(f"{base}/export.jsonl", timeout=300)).text.splitlines()
    exported = [json.loads(line) for line in lines if line.strip()]
    check(len(exported) == 60, f"the export has {len(exported)} labeled items, not 60")
    step("export labeled data", f"{len(exported)} items as JSON lines")

    # --- the training container killed mid-run -----------------------------------------------
    run = ok(s.post(f"{base}/retrain", json={"force": True}, timeout=60), 202).json()["run_id"]
    state = wait_for("run to start on the training worker", lambda: (lambda st: st if (
        st.get("run") == run and st["status"] == "running" and st["progress"]) else None)(
        admin.get(f"{URL}/projects/{pid}/models/progress", timeout=30).json()), timeout=600,
        every=0.5)
    compose("kill", "worker-training")
    step("kill the training container", f"run {run} was {state['status']} "
                                        f"({json.dumps(state['progress'])[:80]}), attempt 1")
    compose("start", "worker-training")
    state = wait_for("the run to finish after the restart", lambda: (lambda st: st if st[
        "status"] in ("succeeded", "failed") else None)(admin.get(
            f"{URL}/projects/{pid}/models/progress", timeout=30).json()), timeout=1200, every=3)
    check(state["status"] == "succeeded", f"the run ended {state['status']}: {state['error']}")
    check(state["attempts"] == 2, f"the run took {state['attempts']} attempts, not 2")
    versions = ok(s.get(f"{base}/versions/", timeout=60)).json()
    check([v["number"] for v in versions] == [2, 1] and versions[0]["active"],
          f"versions after the restart: {[(v['number'], v['active']) for v in versions]}")
    made = sql("SELECT count(*) FROM annotator_modelversion WHERE training_run_id = %s", run)
    check(made == [(1,)], f"run {run} made {made[0][0]} versions")
    step("training resumed", f"started again, the beat's sweep handed run {run} to it: "
                             f"attempt {state['attempts']} made version 2, one version, no gap")
    v2 = versions[0]

    # --- the scoring container killed mid-chunk -----------------------------------------------
    killed = kill_mid_chunk()
    step("kill the scoring container", f"mid-chunk (task {killed['task']}): {killed['done']} of "
                                       f"{killed['chunks']} chunks done, "
                                       f"{killed['predicted']} items predicted")
    compose("start", "worker-scoring")
    scored_by(v2["version_id"], "version 2", timeout=900)
    planned = plan_ids(v2["version_id"])
    rows = sql("SELECT item_id, count(*) FROM annotator_prediction WHERE model_version_id = %s "
               "GROUP BY item_id", v2["version_id"])
    twice = [item for item, n in rows if n > 1]
    missing = set(planned) - {item for item, _ in rows}
    check(not twice and not missing, f"predictions of version 2: {len(missing)} planned items "
                                     f"missing, {len(twice)} predicted twice")
    step("scoring resumed", f"started again, the beat's sweep enqueued the chunks not done: "
                            f"{len(planned)} planned items predicted once each")

    # --- roll back -------------------------------------------------------------------------------
    before = sql("SELECT count(*) FROM annotator_prediction WHERE model_version_id = %s",
                 v1["version_id"])
    ok(s.post(f"{base}/versions/{v1['version_id']}/activate", timeout=60))
    ranked_by(v1["version_id"], "version 1 again", timeout=600)
    answer = ok(s.post(f"{base}/predict", json={"texts": ["质量很好"]}, timeout=300)).json()
    check(answer["model_version"] == 1, f"after the rollback web serves {answer['model_version']}")
    after = sql("SELECT count(*) FROM annotator_prediction WHERE model_version_id = %s",
                v1["version_id"])
    check(before == after, "the rollback ran the model again instead of reusing predictions")
    step("roll back", "version 1 active again, the queue re-ranked from its stored predictions, "
                      "web serves version 1")

    deliveries = sql("SELECT count(*) FROM annotator_webhookdelivery WHERE status_code = 204")
    check(deliveries == [(1,)], f"webhook deliveries: {deliveries}")
    step("stack check passed")


def scored_by(version_id: int, what: str, timeout: float) -> None:
    """Every item of the version's scoring plan has its prediction. (Which ranking the queue
    then follows is not asked: once the pool's embeddings are in, the fast loop's head may
    re-rank it right after the version did.)"""
    def done():
        if not any(key.endswith("/ids.npy") for key in _scoring_files(version_id)):
            return None
        got = {item for (item,) in sql("SELECT item_id FROM annotator_prediction "
                                       "WHERE model_version_id = %s", version_id)}
        return set(plan_ids(version_id)) <= got or None

    wait_for(f"the pool to be scored by {what}", done, timeout=timeout, every=2)


def ranked_by(version_id: int, what: str, timeout: float) -> None:
    wait_for(f"the queue to be ranked by {what}", lambda: sql(
        "SELECT count(*) FROM annotator_item WHERE scored_version_id = %s", version_id)[0][0],
        timeout=timeout, every=2)


def _s3():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["STACK_S3_ENDPOINT"],
                        region_name="us-east-1", aws_access_key_id="stack",
                        aws_secret_access_key="stack")


def _scoring_files(version_id: int) -> list[str]:
    listed = _s3().list_objects_v2(Bucket=os.environ["STACK_S3_BUCKET"],
                                   Prefix=f"scoring/{version_id}-")
    return [obj["Key"] for obj in listed.get("Contents", [])]


def plan_ids(version_id: int) -> list[int]:
    import numpy as np

    key = next(k for k in _scoring_files(version_id) if k.endswith("/ids.npy"))
    body = _s3().get_object(Bucket=os.environ["STACK_S3_BUCKET"], Key=key)["Body"].read()
    return [int(i) for i in np.load(io.BytesIO(body))]


def kill_mid_chunk() -> dict:
    """Kill the scoring container while it runs a score_chunk_task: one it logged as received
    and not yet as succeeded."""
    container = compose("ps", "-q", "worker-scoring").strip()
    received = re.compile(r"Task annotator\.tasks\.score_chunk_task\[([0-9a-f-]+)\] received")
    finished = re.compile(r"Task annotator\.tasks\.score_chunk_task\[([0-9a-f-]+)\] "
                          r"(succeeded|failed|raised)")

    def running_chunk():
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                              timeout=60)
        text = logs.stdout + logs.stderr
        open_tasks = [t for t in received.findall(text)
                      if t not in {m[0] for m in finished.findall(text)}]
        return open_tasks[-1] if open_tasks else None

    task = wait_for("a scoring chunk in progress", running_chunk, timeout=900, every=0.3)
    subprocess.run(["docker", "kill", container], check=True, capture_output=True, timeout=60)
    check(running_chunk() == task, f"chunk {task} finished before the kill: not mid-chunk")
    version = sql("SELECT id FROM annotator_modelversion WHERE is_active")[0][0]
    plan = plan_ids(version)
    files = _scoring_files(version)
    chunks = len(range(0, len(plan), int(os.environ.get("STACK_CHUNK_SIZE", "200"))))
    done = sum("/done-" in key for key in files)
    predicted = sql("SELECT count(*) FROM annotator_prediction WHERE model_version_id = %s",
                    version)[0][0]
    check(done < chunks, f"the scoring was not mid-way when killed ({done} of {chunks} done)")
    return {"task": task[:8], "done": done, "chunks": chunks, "predicted": predicted}


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as failure:
        step("FAILED", str(failure))
        sys.exit(1)

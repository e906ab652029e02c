"""serve_test.py: end-to-end tests of `duovid serve` on 127.0.0.1 with the tiny demo model.

usage: serve_test.py PART DUOVID_BIN WORKDIR   (PART: api | bad | load | page | schema | qwen)
  api    the official `openai` client: a streamed answer about the demo video equals `duovid ask` with
         the same settings (progress chunks come before the first token), a second turn resumes the
         conversation's KV cache, a second conversation on the same video is a context cache hit (in
         the timings and in /metrics), uploads (files.create) and data: URLs, a restart keeps the cache.
  bad    malformed requests each get a 4xx with an OpenAI error object; the server stays up.
  load   16 concurrent clients x 4 requests: each answered or refused with a clean 503; p50/p99.
  page   headless Chromium drives the page at / (pick the demo video, ask, wait for the streamed
         answer, timings shown) and saves WORKDIR/page.png.
  schema schemathesis against docs/openapi.yaml for a bounded number of examples: no 5xx.
  qwen   the tiny Qwen2.5-VL and Qwen3-VL fixtures (tests/fixtures/qwenvl) at the processor's frame rate,
         greedy, f32 KV: the answer about the committed clip equals `duovid ask` (and HF's, from the
         fixture), a second turn in the same conversation resumes its KV cache and equals the second
         answer of `duovid chat`.
Exit 0 pass, 1 fail, 77 skipped (a python package or chromium is missing).
"""
import atexit
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "assets/models/tiny-llava-next-video")
PATTERN = os.path.join(ROOT, "assets/patterns/tiny-llava-next-video")
DEMO = os.path.join(ROOT, "assets/video/demo.mp4")
MODEL_ID = "tiny-llava-next-video"
QUESTION = "What is moving in this video?"
N = 16  # answer tokens

failed = 0


def check(label, ok, detail=""):
    global failed
    print(("ok   " if ok else "FAIL ") + label + ("" if ok or not detail else "  | " + str(detail)[:600]), flush=True)
    if not ok:
        failed += 1


def skip(why):
    print("SKIPPED: " + why)
    sys.exit(77)


class Server:
    """`duovid serve` on a free port of 127.0.0.1; stopped with SIGTERM."""

    def __init__(self, bin_, work, *extra, name="srv", model_args=("-m", MODEL, "--duo", PATTERN, "--fps", "1")):
        self.log = os.path.join(work, name + ".log")
        self.cmd = [bin_, "serve"] + list(model_args) + ["--port", "0", "--media-path", os.path.join(work, "media"),
                                                         "--cache-dir", os.path.join(work, "cache"), "-n", str(N)] + list(extra)
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        atexit.register(lambda p=self.p: p.poll() is None and p.kill())  # a test that raised leaves none behind
        self.port = None
        t0 = time.time()
        while time.time() - t0 < 120 and self.p.poll() is None:
            m = re.search(r"listening on \S+ port (\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if not self.port:
            raise RuntimeError("server did not start: " + open(self.log).read()[-2000:])
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self, timeout=60):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -9


def request(srv, method, path, body=None, headers=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    return r.status, j, dict(r.getheaders()), data


def metrics(srv, headers=None):
    _, _, _, data = request(srv, "GET", "/metrics", headers=headers)
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split()
            out[k] = float(v)
    return out


def video_part(url, **opts):
    v = {"url": url}
    v.update(opts)
    return {"type": "video_url", "video_url": v}


def setup_media(work):
    media = os.path.join(work, "media")
    os.makedirs(media, exist_ok=True)
    shutil.copy(DEMO, os.path.join(media, "demo.mp4"))
    shutil.copy(DEMO, os.path.join(work, "secret.mp4"))  # outside the media folder
    link = os.path.join(media, "escape.mp4")
    if not os.path.lexists(link):
        os.symlink(os.path.join(work, "secret.mp4"), link)
    return media


# ---------------------------------------------------------------------------------------------- api
def part_api(bin_, work):
    try:
        import openai
    except ImportError:
        skip("the python package openai is missing (pip install openai)")
    media = setup_media(work)
    demo_url = "file://" + os.path.join(media, "demo.mp4")
    # the reference: `duovid ask` with the same settings, no cache
    ask = subprocess.run([bin_, "ask", "-m", MODEL, "--duo", PATTERN, "-v", os.path.join(media, "demo.mp4"),
                          "--fps", "1", "-n", str(N), "--no-cache", QUESTION], capture_output=True, text=True,
                         timeout=300)
    check("duovid ask runs", ask.returncode == 0, ask.stderr)
    want = ask.stdout[:-1] if ask.stdout.endswith("\n") else ask.stdout

    srv = Server(bin_, work)
    cl = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    models = cl.models.list()
    check("models.list names the model", [m.id for m in models.data] == [MODEL_ID], models)

    msgs = [{"role": "user", "content": [video_part(demo_url), {"type": "text", "text": QUESTION}]}]
    stream = cl.chat.completions.create(model=MODEL_ID, messages=msgs, stream=True, max_tokens=N)
    text, progress_before, saw_text, final, conv = "", 0, False, None, None
    for ch in stream:
        extra = ch.model_extra or {}
        if extra.get("progress"):
            progress_before += not saw_text
        if ch.choices and ch.choices[0].delta.content:
            saw_text = True
            text += ch.choices[0].delta.content
        if extra.get("timings"):
            final = extra["timings"]
            conv = extra.get("conversation_id")
    check("streamed answer equals `duovid ask`", text == want, "%r vs %r" % (text, want))
    check("progress chunks before the first token", progress_before >= 2, progress_before)
    check("first answer: context built (cache miss)", final and final["cache"] == "miss" and final["frames"] == 10,
          final)

    # second turn, stateless: the whole history goes back; the server finds the conversation by it
    msgs2 = msgs + [{"role": "assistant", "content": text}, {"role": "user", "content": "And then?"}]
    r2 = cl.chat.completions.create(model=MODEL_ID, messages=msgs2, max_tokens=N)
    t2 = r2.model_extra["timings"]
    check("second turn resumes the conversation's KV cache", t2["cache"] == "conversation" and
          t2["conversation_resumed"] and t2["decode_sec"] == 0, t2)
    check("second turn: the context grew", r2.usage.prompt_tokens > final["video_tokens"] + 5, r2.usage)
    check("second turn: same conversation id", r2.model_extra["conversation_id"] == conv, r2.model_extra)

    # a second conversation on the same video: the video context comes from the context cache
    r3 = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": [
        video_part(demo_url), {"type": "text", "text": "Describe the colours."}]}], max_tokens=4,
        extra_body={"conversation_id": "second"})
    t3 = r3.model_extra["timings"]
    check("second conversation on the video: context cache hit", t3["cache"] == "hit" and t3["cache_hit"] and
          t3["decode_sec"] == 0 and t3["encode_sec"] == 0, t3)
    check("cached tokens reported", r3.usage.prompt_tokens_details.cached_tokens == t3["video_tokens"], r3.usage)
    m = metrics(srv)
    check("/metrics: one cache hit, one miss, one resume", m.get("duovid_context_cache_hits_total") == 1 and
          m.get("duovid_context_cache_misses_total") == 1 and m.get("duovid_conversation_resumes_total") == 1, m)

    # the first conversation again, by id only: swapped back into the model
    r4 = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Anything else?"}],
                                    max_tokens=4, extra_body={"conversation_id": conv})
    check("conversation_id alone continues the first conversation",
          r4.model_extra["timings"]["cache"] == "conversation" and r4.usage.prompt_tokens > r2.usage.prompt_tokens,
          r4.model_extra)
    # the same turn replayed the stateless way equals the by-id answer only if state swapping is exact:
    # checked in tests/test_vlm_state.c; here the turn must at least go on from the right context
    # uploads: files.create (multipart) and a data: URL; the same bytes are the same cached context
    f = cl.files.create(file=open(os.path.join(media, "demo.mp4"), "rb"), purpose="vision")
    check("files.create keeps the video", f.id.startswith("file-") and f.bytes == os.path.getsize(DEMO), f)
    r5 = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": [
        video_part(f.id), {"type": "text", "text": QUESTION}]}], max_tokens=N)
    check("uploaded file id: cache hit, same answer", r5.model_extra["timings"]["cache"] == "hit" and
          r5.choices[0].message.content == want, (r5.model_extra["timings"], r5.choices[0].message.content))
    b64 = base64.b64encode(open(DEMO, "rb").read()).decode()
    r6 = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": [
        video_part("data:video/mp4;base64," + b64), {"type": "text", "text": QUESTION}]}], max_tokens=N)
    check("data: URL: cache hit, same answer", r6.model_extra["timings"]["cache"] == "hit" and
          r6.choices[0].message.content == want, r6.model_extra["timings"])
    # per-request frame options change the plan
    r7 = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": [
        video_part(demo_url, frames=4, start=2, end=8), {"type": "text", "text": QUESTION}]}], max_tokens=2)
    check("per-request frames=4 over 2-8 s", r7.model_extra["timings"]["frames"] == 4, r7.model_extra["timings"])
    # a client that goes away mid-answer cancels its generation
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("POST", "/v1/chat/completions", json.dumps({"model": MODEL_ID, "stream": True, "max_tokens": 3000,
              "ignore_eos": True, "messages": msgs}), {"Content-Type": "application/json"})
    resp = c.getresponse()
    got = b""
    while b'"content":"' not in got.replace(b'"content":""', b""):
        got += resp.read1(4096)
    c.close()
    t0 = time.time()
    while time.time() - t0 < 30 and metrics(srv).get("duovid_requests_cancelled_total", 0) < 1:
        time.sleep(0.05)
    m = metrics(srv)
    check("client disconnect cancels the generation", m.get("duovid_requests_cancelled_total") == 1 and
          m.get("duovid_busy") == 0, m)
    # SIGTERM while an answer streams: it finishes, then the server exits 0
    out = {}

    def long_stream():
        st, _, _, raw = request(srv, "POST", "/v1/chat/completions", {"model": MODEL_ID, "stream": True,
                                "max_tokens": 300, "ignore_eos": True, "messages": msgs})
        out["st"], out["raw"] = st, raw

    th = threading.Thread(target=long_stream)
    th.start()
    t0 = time.time()
    while time.time() - t0 < 30 and metrics(srv).get("duovid_busy") != 1:
        time.sleep(0.01)
    rc = srv.stop()
    th.join(60)
    check("SIGTERM: the running answer finishes", out.get("st") == 200 and b'"finish_reason":"length"' in
          out.get("raw", b"") and out["raw"].endswith(b"data: [DONE]\n\n"), out.get("raw", b"")[-300:])
    check("SIGTERM: exit 0", rc == 0, open(srv.log).read()[-1500:])
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    check("after SIGTERM: no new connections", refused)

    # after a restart the context cache still holds the video
    srv = Server(bin_, work, name="srv2")
    cl = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    # the second turn of the first conversation, stateless: its KV cache is gone with the old process,
    # so the history is prefilled again; the answer equals the one the kept conversation gave (the
    # re-tokenized answer text gives the same tokens here)
    r9 = cl.chat.completions.create(model=MODEL_ID, messages=msgs2, max_tokens=N)
    t9 = r9.model_extra["timings"]
    check("after a restart: the history is replayed", t9["cache"] == "hit" and t9["replayed_turns"] == 1 and
          r9.usage.prompt_tokens == r2.usage.prompt_tokens, (t9, r9.usage, r2.usage))
    check("replayed history: same second answer", r9.choices[0].message.content == r2.choices[0].message.content,
          (r9.choices[0].message.content, r2.choices[0].message.content))
    r8 = cl.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=N)
    check("after a restart: cache hit, same answer", r8.model_extra["timings"]["cache"] == "hit" and
          r8.choices[0].message.content == want, r8.model_extra["timings"])
    check("SIGTERM: exit 0 (second run)", srv.stop() == 0)


# ---------------------------------------------------------------------------------------------- bad
def is_error(status, j, want):
    return (status == want and isinstance(j, dict) and isinstance(j.get("error"), dict) and
            isinstance(j["error"].get("message"), str) and isinstance(j["error"].get("type"), str) and
            "code" in j["error"])


def declared_too_big(srv, path, length):
    """Sends only the headers (and a few bytes) of a body of `length` bytes: the answer must be a 413."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"model\":" % (path.encode(), length))
    resp = b""
    try:
        while not (b"\r\n\r\n" in resp and resp.rstrip().endswith(b"}")):
            d = s.recv(65536)
            if not d:
                break
            resp += d
    except OSError:
        pass
    s.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    try:
        j = json.loads(body[body.find(b"{"):])
    except ValueError:
        j = None
    ok = head.startswith(b"HTTP/1.1 413") and is_error(413, j, 413)
    if not ok:
        print("     | " + repr(resp[:300]))
    return ok


def part_bad(bin_, work):
    media = setup_media(work)
    srv = Server(bin_, work, "--api-key", "sekrit", "--max-body", "1048576", "--max-upload", "4194304")
    auth = {"Authorization": "Bearer sekrit"}
    demo_url = "file://" + os.path.join(media, "demo.mp4")

    def chat(body, want, label, headers=auth):
        st, j, _, raw = request(srv, "POST", "/v1/chat/completions", body, headers)
        check(label + " -> %d" % want, is_error(st, j, want), (st, raw[:300]))

    def msg(url, text="hi"):
        return {"model": MODEL_ID, "messages": [{"role": "user", "content": [video_part(url), {"type": "text", "text": text}]}]}

    chat(msg(demo_url), 401, "no API key", headers={})
    chat(msg(demo_url), 401, "wrong API key", headers={"Authorization": "Bearer nope"})
    st, j, _, _ = request(srv, "GET", "/v1/models", headers=auth)
    check("right API key -> 200", st == 200 and j["data"][0]["id"] == MODEL_ID, j)
    st, j, _, _ = request(srv, "GET", "/health")
    check("/health needs no key", st == 200 and j["status"] == "ok", j)
    chat("{not json", 400, "malformed JSON")
    chat("[1, 2]", 400, "a JSON array, not an object")
    chat("", 400, "empty body")
    chat({"model": MODEL_ID, "messages": "hi"}, 400, "messages: a string")
    chat({"model": MODEL_ID, "messages": []}, 400, "messages: empty")
    chat({"model": 7, "messages": msg(demo_url)["messages"]}, 400, "model: a number")
    chat({**msg(demo_url), "max_tokens": "ten"}, 400, "max_tokens: a string")
    chat({**msg(demo_url), "max_tokens": 1.5}, 400, "max_tokens: not an integer")
    chat({**msg(demo_url), "temperature": "hot"}, 400, "temperature: a string")
    chat({**msg(demo_url), "stream": "yes"}, 400, "stream: a string")
    chat({**msg(demo_url), "fps": -1}, 400, "fps: negative")
    chat({**msg(demo_url), "fps": 1, "frames": 3}, 400, "fps and frames together")
    chat({**msg(demo_url), "start": 5, "end": 2}, 400, "end before start")
    chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         400, "image_url part")
    chat({"model": MODEL_ID, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "unknown role")
    chat({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}]}, 400, "no video, no conversation")
    chat({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "conversation_id": "nope"}, 404,
         "unknown conversation_id")
    chat({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "conversation_id": "../x"}, 400,
         "conversation_id with a slash")
    chat({"model": "gpt-4o", "messages": msg(demo_url)["messages"]}, 404, "unknown model")
    chat(msg("file:///etc/passwd"), 403, "file:// outside --media-path")
    chat(msg("file://" + media + "/../secret.mp4"), 403, "../ escape")
    chat(msg("file://" + media + "/%2e%2e/secret.mp4"), 403, "percent-encoded ../ escape")
    chat(msg("file://" + media + "/escape.mp4"), 403, "symlink escape")
    chat(msg("file://" + media + "/missing.mp4"), 404, "missing video")
    chat(msg("http://example.com/a.mp4"), 400, "http:// URL")
    chat(msg("data:video/mp4;base64,!!!!"), 400, "data: URL, not base64")
    chat(msg("data:video/mp4;base64," + base64.b64encode(b"not a video at all" * 10).decode()), 400,
         "data: URL, not a video")
    chat(msg("file-0123456789abcdef"), 404, "unknown file id")
    chat({**msg(demo_url), "messages": msg(demo_url)["messages"] + [{"role": "user", "content": "again"}]}, 400,
         "two user messages in a row")
    chat({"model": MODEL_ID, "messages": [{"role": "system", "content": "be brief"}] + msg(demo_url)["messages"]}, 400,
         "a system prompt other than --system")
    # a 2 GB body, declared: refused from the headers, before any of it is sent
    check("2 GB body (declared) -> 413", declared_too_big(srv, "/v1/chat/completions", 2000000000))
    # the same, chunked (no length): read up to the limit, then 413
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.putrequest("POST", "/v1/chat/completions")
    c.putheader("Authorization", "Bearer sekrit")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    blob = b"x" * 65536
    for _ in range(20):  # 1.25 MiB > --max-body 1 MiB
        c.send(b"%x\r\n%s\r\n" % (len(blob), blob))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    data = r.read()
    check("chunked body over --max-body -> 413", is_error(r.status, json.loads(data), 413), data[:200])
    c.close()
    # uploads
    st, j, _, raw = request(srv, "POST", "/v1/files?filename=a.txt", b"hello, not a video" * 100,
                            {**auth, "Content-Type": "application/octet-stream"})
    check("non-video upload -> 400", is_error(st, j, 400), raw[:200])
    check("upload over --max-upload (declared) -> 413", declared_too_big(srv, "/v1/files", 5 << 20))
    st, j, _, raw = request(srv, "POST", "/v1/files", b"--xx\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                            b"vision\r\n--xx--\r\n", {**auth, "Content-Type": "multipart/form-data; boundary=xx"})
    check("multipart upload without a file part -> 400", is_error(st, j, 400), raw[:200])
    st, j, _, raw = request(srv, "POST", "/v1/files?filename=demo.mp4", open(DEMO, "rb").read(),
                            {**auth, "Content-Type": "application/octet-stream"})
    check("raw video upload -> 200", st == 200 and j["id"].startswith("file-"), raw[:200])
    # routes and methods
    st, j, _, _ = request(srv, "GET", "/v1/nothing", headers=auth)
    check("unknown route -> 404", is_error(st, j, 404), j)
    st, j, _, _ = request(srv, "GET", "/v1/chat/completions", headers=auth)
    check("GET on a POST route -> 405", is_error(st, j, 405), j)
    st, j, _, _ = request(srv, "GET", "/v1/sheets/../../etc/passwd", headers=auth)
    check("sheet path traversal -> 404", st == 404, j)
    st, j, _, _ = request(srv, "POST", "/v1/videos/plan", {"video_url": "file:///etc/passwd"}, auth)
    check("plan outside --media-path -> 403", is_error(st, j, 403), j)
    # the server is still fine, and answers a good request
    st, j, _, raw = request(srv, "POST", "/v1/chat/completions", {**msg(demo_url, QUESTION), "max_tokens": 2}, auth)
    check("a good request after all that -> 200", st == 200 and j["choices"][0]["finish_reason"] in ("stop", "length"),
          raw[:300])
    m = metrics(srv, auth)
    check("/metrics counts the failures", m.get("duovid_requests_failed_total", 0) >= 25, m)
    check("SIGTERM: exit 0", srv.stop() == 0, open(srv.log).read()[-1500:])
    # a request that runs past --request-timeout is cancelled with a 504. The limit is 5 ms: decoding the
    # video alone takes longer, on any machine, while one second let a fast CI host finish all 3500 tokens
    srv = Server(bin_, work, "--request-timeout", "0.005", name="srv-timeout")
    st, j, _, raw = request(srv, "POST", "/v1/chat/completions", {**msg(demo_url, QUESTION), "max_tokens": 3500,
                            "ignore_eos": True})
    check("past --request-timeout -> 504", is_error(st, j, 504), raw[:300])
    check("SIGTERM: exit 0 (timeout server)", srv.stop() == 0, open(srv.log).read()[-1500:])


# --------------------------------------------------------------------------------------------- load
def load_round(bin_, work, queue):
    """16 clients x 4 requests (odd ones streamed) against a server with --queue `queue`."""
    media = os.path.join(work, "media")
    srv = Server(bin_, work, "--queue", str(queue), "--conversations", "4", name="srv-q%d" % queue)
    demo_url = "file://" + os.path.join(media, "demo.mp4")
    lat, refused, bad = [], [], []
    lock = threading.Lock()

    def client(k):
        for i in range(4):
            body = {"model": MODEL_ID, "max_tokens": 8, "stream": (i % 2 == 1), "messages": [{"role": "user",
                    "content": [video_part(demo_url), {"type": "text", "text": "Question %d of client %d?" % (i, k)}]}]}
            t0 = time.time()
            try:
                st, j, h, raw = request(srv, "POST", "/v1/chat/completions", body, timeout=300)
            except Exception as e:  # noqa: BLE001 (a failed connection is a failure of the test)
                with lock:
                    bad.append(repr(e))
                continue
            dt = time.time() - t0
            ok = st == 200 and (b"[DONE]" in raw if body["stream"] else j and j["choices"][0]["message"] is not None)
            with lock:
                if ok:
                    lat.append(dt)
                elif st == 503 and is_error(st, j, 503) and h.get("Retry-After"):
                    refused.append(dt)
                else:
                    bad.append((st, raw[:200]))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.time() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    print("LOAD --queue %d: 16 clients x 4 requests: %d answered, %d refused (503), %d failed in %.1f s; latency "
          "p50 %.3f s, p99 %.3f s, max %.3f s" % (queue, len(lat), len(refused), len(bad), wall, p(0.5), p(0.99),
                                                  lat[-1] if lat else 0))
    check("--queue %d: every request answered or cleanly refused" % queue,
          not bad and len(lat) + len(refused) == 64, bad[:3])
    m = metrics(srv)
    check("--queue %d: /metrics counts requests and rejections" % queue, m.get("duovid_requests_total") == 64 and
          m.get("duovid_requests_rejected_total") == len(refused) and m.get("duovid_queue_length") == 0, m)
    check("--queue %d: SIGTERM: exit 0" % queue, srv.stop() == 0, open(srv.log).read()[-1500:])
    return len(lat), len(refused)


def part_load(bin_, work):
    setup_media(work)
    answered, _ = load_round(bin_, work, 8)   # a short queue: some requests are refused with 503
    check("--queue 8: some answered", answered >= 8, answered)
    answered, refused = load_round(bin_, work, 64)  # room for all: every request is answered
    check("--queue 64: all 64 answered", answered == 64 and refused == 0, (answered, refused))


# --------------------------------------------------------------------------------------------- page
def part_page(bin_, work):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        skip("chromium is missing (apt-get install chromium)")
    try:
        import websocket
    except ImportError:
        skip("the python package websocket-client is missing (pip install websocket-client)")
    setup_media(work)
    srv = Server(bin_, work)
    prof = os.path.join(work, "chromium-profile")
    br = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--remote-debugging-port=0", "--user-data-dir=" + prof,
                           "--window-size=1280,900", "about:blank"], stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(work, "chromium.log"), "w"))
    try:
        port_file = os.path.join(prof, "DevToolsActivePort")
        t0 = time.time()
        while not os.path.exists(port_file) and time.time() - t0 < 60:
            time.sleep(0.1)
        check("chromium starts", os.path.exists(port_file))
        if not os.path.exists(port_file):
            return
        time.sleep(0.2)
        dport = open(port_file).read().split()[0]
        c = http.client.HTTPConnection("127.0.0.1", int(dport), timeout=30)
        c.request("GET", "/json")
        targets = json.loads(c.getresponse().read())
        page = [t for t in targets if t.get("type") == "page"][0]
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        seq = [0]

        def cdp(method, **params):
            seq[0] += 1
            ws.send(json.dumps({"id": seq[0], "method": method, "params": params}))
            while True:
                m = json.loads(ws.recv())
                if m.get("id") == seq[0]:
                    return m.get("result", {})

        def js(expr):
            r = cdp("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
            return r.get("result", {}).get("value")

        def wait_for(expr, secs):
            t0 = time.time()
            while time.time() - t0 < secs:
                v = js(expr)
                if v:
                    return v
                time.sleep(0.2)
            return None

        cdp("Network.enable")
        cdp("Page.enable")
        cdp("Page.navigate", url=srv.url + "/")
        check("page loads, lists the demo video",
              wait_for("[...document.querySelectorAll('#media option')].some(o => o.textContent == 'demo.mp4')", 30))
        # keyboard only: focus the select, pick the demo video, then type the question and press Enter
        js("(() => { const s = document.getElementById('media'); s.focus(); "
           "s.value = [...s.options].find(o => o.textContent == 'demo.mp4').value; "
           "s.dispatchEvent(new Event('change')); return 1; })()")
        check("contact sheet shown", wait_for("(() => { const i = document.getElementById('sheet'); "
                                              "return !i.hidden && i.complete && i.naturalWidth > 0; })()", 60))
        check("sampling plan shown", "10 frames" in (js("document.getElementById('plan').textContent") or ""),
              js("document.getElementById('plan').textContent"))
        cdp("Runtime.evaluate", expression="document.getElementById('ask').focus()")
        cdp("Input.insertText", text=QUESTION)
        for t in ("keyDown", "keyUp"):
            cdp("Input.dispatchKeyEvent", type=t, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13, text="\r" if t == "keyDown" else "")
        done = wait_for("(() => { const m = document.querySelector('.msg.assistant'); "
                        "return m && m.dataset.done == '1' ? m.textContent : ''; })()", 120)
        check("streamed answer shown with its timings", bool(done) and "tok/s" in done and "Error" not in done, done)
        # a second question on the same conversation: resumed KV cache
        cdp("Runtime.evaluate", expression="document.getElementById('ask').focus()")
        cdp("Input.insertText", text="And then?")
        for t in ("keyDown", "keyUp"):
            cdp("Input.dispatchKeyEvent", type=t, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13, text="\r" if t == "keyDown" else "")
        done2 = wait_for("(() => { const m = document.querySelectorAll('.msg.assistant'); "
                         "return m.length == 2 && m[1].dataset.done == '1' ? m[1].textContent : ''; })()", 120)
        check("second turn: conversation resumed", bool(done2) and "conversation resumed" in done2, done2)
        # the page made no request outside the server
        ext = js("performance.getEntriesByType('resource').map(e => e.name)"
                 ".filter(u => !u.startsWith(location.origin) && !u.startsWith('blob:'))")
        check("no external requests", ext == [], ext)
        shot = cdp("Page.captureScreenshot", format="png")
        png = os.path.join(work, "page.png")
        open(png, "wb").write(base64.b64decode(shot.get("data", "")))
        check("screenshot saved", os.path.getsize(png) > 10000, png)
        print("screenshot: " + png)
        ws.close()
    finally:
        br.terminate()
        try:
            br.wait(20)
        except subprocess.TimeoutExpired:
            br.kill()
        check("SIGTERM: exit 0", srv.stop() == 0)


# --------------------------------------------------------------------------------------------- qwen
def fixture_meta(path, key):
    """A value of a safetensors file's metadata (8-byte header length, JSON header)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))["__metadata__"][key]


def part_qwen(bin_, work):
    try:
        import openai
    except ImportError:
        skip("the python package openai is missing (pip install openai)")
    clip = os.path.join(ROOT, "tests/fixtures/vlm/clip.mp4")
    media = os.path.join(work, "media")
    os.makedirs(media, exist_ok=True)
    shutil.copy(clip, os.path.join(media, "clip.mp4"))
    url = "file://" + os.path.join(media, "clip.mp4")
    q2 = "What colour is it?"
    for name in ("tiny-qwen2_5-vl", "tiny-qwen3-vl"):
        model = os.path.join(ROOT, "tests/fixtures/qwenvl", name)
        ref = model + ".ref.safetensors"
        if not os.path.exists(os.path.join(model, "model.safetensors")) or not os.path.exists(ref):
            skip(model + " is missing")
        # greedy, f32 KV (the fixtures' exact-parity setting), the processor's frames (no --fps)
        common = ["-m", model, "--kv-type", "f32", "--temp", "0"]
        ask = subprocess.run([bin_, "ask"] + common + ["-n", str(N), "-v", clip, "--no-cache", QUESTION],
                             capture_output=True, text=True, timeout=300)
        check(name + ": duovid ask runs", ask.returncode == 0, ask.stderr)
        want = ask.stdout[:-1] if ask.stdout.endswith("\n") else ask.stdout
        hf = fixture_meta(ref, "answer_turn1").split("<|im_end|>")[0]  # the CLI stops at the end of the turn
        check(name + ": duovid ask gives HF's answer", want == hf, "%r vs %r" % (want, hf))
        chat = subprocess.run([bin_, "chat"] + common + ["-n", str(N), "-v", clip, "--no-cache"],
                              input="%s\n%s\n/quit\n" % (QUESTION, q2), capture_output=True, text=True, timeout=300)
        lines = chat.stdout.split("\n")
        check(name + ": duovid chat answers two turns", chat.returncode == 0 and len(lines) == 3 and lines[0] == want,
              (lines, chat.stderr[-500:]))
        want2 = lines[1] if len(lines) > 1 else None

        srv = Server(bin_, work, name="srv-" + name, model_args=common)
        cl = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        msgs = [{"role": "user", "content": [video_part(url), {"type": "text", "text": QUESTION}]}]
        r1 = cl.chat.completions.create(model=name, messages=msgs, max_tokens=N, temperature=0)
        t1 = r1.model_extra["timings"]
        check(name + ": chat.completions answer equals `duovid ask`", r1.choices[0].message.content == want,
              "%r vs %r" % (r1.choices[0].message.content, want))
        check(name + ": the processor's frames, context built", t1["cache"] == "miss" and t1["frames"] ==
              (8 if "2_5" in name else 7), t1)
        msgs2 = msgs + [{"role": "assistant", "content": r1.choices[0].message.content}, {"role": "user", "content": q2}]
        r2 = cl.chat.completions.create(model=name, messages=msgs2, max_tokens=N, temperature=0)
        t2 = r2.model_extra["timings"]
        check(name + ": second turn resumes the conversation", t2["cache"] == "conversation" and
              t2["conversation_resumed"] and r2.model_extra["conversation_id"] == r1.model_extra["conversation_id"], t2)
        check(name + ": second turn equals `duovid chat`'s", r2.choices[0].message.content == want2,
              "%r vs %r" % (r2.choices[0].message.content, want2))
        check(name + ": SIGTERM: exit 0", srv.stop() == 0, open(srv.log).read()[-1500:])


# ------------------------------------------------------------------------------------------- schema
def part_schema(bin_, work):
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        skip("the python package schemathesis is missing (pip install schemathesis)")
    st_bin = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    if not os.path.exists(st_bin):
        st_bin = shutil.which("schemathesis") or shutil.which("st")
    if not st_bin:
        skip("the schemathesis command is missing")
    setup_media(work)
    srv = Server(bin_, work, "--request-timeout", "60")
    r = subprocess.run([st_bin, "run", os.path.join(ROOT, "docs/openapi.yaml"), "--url", srv.url,
                        "--checks", "not_a_server_error", "--max-examples", "25", "--request-timeout", "60",
                        "--seed", "1", "--phases", "examples,coverage,fuzzing"],
                       capture_output=True, text=True, timeout=900, cwd=work)
    out = r.stdout + r.stderr
    print(out[-3000:])
    check("schemathesis: no 5xx", r.returncode == 0 and re.search(r"\d+ generated, \d+ passed", out) is not None, r.returncode)
    check("SIGTERM: exit 0", srv.stop() == 0, open(srv.log).read()[-1500:])


def main():
    part, bin_, work = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)  # a fresh context cache: the first answer must build its context
    os.makedirs(work)
    {"api": part_api, "bad": part_bad, "load": part_load, "page": part_page, "schema": part_schema,
     "qwen": part_qwen}[part](bin_, work)
    print("%s: %s" % (part, "FAILED (%d)" % failed if failed else "passed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

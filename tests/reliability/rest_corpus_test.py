"""A corpus of bad REST requests against a `ctrflow serve` process: each gets a 4xx and a clear error.

Every request of CORPUS goes over HTTP to the server process of conftest.py (serving.testing's
model, inputs item_id [B], history_item_id [B, T], timestamp [B], item_price [B]). Each must
be answered with its 4xx code and ``{"error": message}``, the message naming what was wrong
in under MAX_MESSAGE characters (a request that quotes a megabyte back is not a clear error).
Requests whose bytes break HTTP itself (wrong Content-Length, chunked bodies) go over raw
sockets. Then the whole corpus is sent ROUNDS more times: the server still answers a good
request with the right scores, and its resident memory grew by less than MAX_GROWTH.
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from serving import client, testing

from serving.testing import rss_bytes

ITEM, HISTORY, TIMESTAMP, PRICE = testing.INPUTS
GOOD = {ITEM: "i1", HISTORY: ["a", ""], TIMESTAMP: 5, PRICE: 1.5}
PREDICT = "/v1/models/ctr:predict"
MAX_MESSAGE = 2000
WARM_UP_ROUNDS = 5
ROUNDS = 50  # 48 requests a round, 2,400 in all, 3 of them of a megabyte
MAX_GROWTH = 8 * 1024 * 1024  # per half of the rounds; keeping 8 KiB per bad request adds 9 MiB


def body(document) -> bytes:
    return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")


def instances(*rows) -> bytes:
    return body({"instances": list(rows)})


def row(**changes):
    values = dict(GOOD, **changes)
    return {k: v for k, v in values.items() if v is not Ellipsis}


MEGABYTE = "9" * (1 << 20)
CORPUS = [
    # (name, method, path, body, expected code, words the error must hold)
    ("malformed JSON", "POST", PREDICT, b'{"instances": [{"item_id": "i1",', 400, "JSON Parse error"),
    ("JSON that is not an object", "POST", PREDICT, b"[1, 2, 3]", 400, "Is not object"),
    ("empty body", "POST", PREDICT, b"", 400, "The document is empty"),
    ("trailing garbage", "POST", PREDICT, instances(GOOD) + b"}}", 400, "Extra data"),
    ("neither instances nor inputs", "POST", PREDICT, body({"rows": [GOOD]}), 400, "Missing 'inputs' or 'instances'"),
    ("both instances and inputs", "POST", PREDICT, body({"instances": [GOOD], "inputs": {}}), 400, "only one of"),
    ("string for an int64", "POST", PREDICT, instances(row(timestamp="yesterday")), 400, "expected type: int64"),
    ("number for a string", "POST", PREDICT, instances(row(item_id=7)), 400, "expected type: string"),
    ("float for an int64", "POST", PREDICT, instances(row(timestamp=1.5)), 400, "expected type: int64"),
    ("bool for a float", "POST", PREDICT, instances(row(item_price=True)), 400, "expected type: float"),
    ("null for a float", "POST", PREDICT, instances(row(item_price=None)), 400, "expected type: float"),
    ("int64 overflow", "POST", PREDICT, instances(row(timestamp=2 ** 64)), 400, "out of range for int64"),
    ("float32 overflow", "POST", PREDICT, instances(row(item_price=1e300)), 400, "without loss of precision"),
    ("NaN timestamp", "POST", PREDICT, instances(row(timestamp=float("nan"))), 400, "expected type: int64"),
    ("scalar history", "POST", PREDICT, instances(row(history_item_id="a")), 400, "rank"),
    ("ragged histories", "POST", PREDICT, instances(GOOD, row(history_item_id=["a"])), 400, "Expecting shape [2]"),
    ("bad base64", "POST", PREDICT, instances(row(item_id={"b64": "@@@"})), 400, "Unable to base64 decode"),
    ("missing feature", "POST", PREDICT, instances(row(item_price=...)), 400, "Missing: ['item_price']"),
    ("extra feature", "POST", PREDICT, instances(row(colour="red")), 400,
     "not inputs of the signature: ['colour']"),
    ("columnar missing feature", "POST", PREDICT, body({"inputs": {ITEM: ["i1"]}}), 400, "Missing named input"),
    ("columnar extra feature", "POST", PREDICT,
     body({"inputs": {**{k: [v] for k, v in GOOD.items()}, "colour": ["red"]}}), 400, "['colour']"),
    ("columnar batch sizes differ", "POST", PREDICT,
     body({"inputs": {ITEM: ["i1", "i2"], HISTORY: [["a"]], TIMESTAMP: [1], PRICE: [1.0]}}), 400,
     "different batch sizes"),
    ("plain list for four inputs", "POST", PREDICT, instances("i1"), 400, "expecting list of objects"),
    ("empty batch", "POST", PREDICT, instances(), 400, "No values in 'instances'"),
    ("empty columnar batch", "POST", PREDICT,
     body({"inputs": {ITEM: [], HISTORY: [], TIMESTAMP: [], PRICE: []}}), 400, "empty batch"),
    ("batch over the limit", "POST", PREDICT, instances(*[GOOD] * 5000), 400,
     "Task size 5000 is larger than maximum batch size 4096"),
    ("deep nesting", "POST", PREDICT, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     "nested too deeply"),
    ("nesting deeper than the rank", "POST", PREDICT, instances(row(history_item_id=[[["a"]]])), 400,
     "expects a tensor of rank 2"),
    ("megabyte string for an int64", "POST", PREDICT, instances(row(timestamp=MEGABYTE)), 400,
     "expected type: int64"),
    ("megabyte signature name", "POST", PREDICT, body({"signature_name": MEGABYTE, "instances": [GOOD]}), 400,
     "not found in signature def"),
    ("megabyte feature name", "POST", PREDICT, instances(dict(GOOD, **{MEGABYTE: 1})), 400,
     "not inputs of the signature"),
    ("60 KB label", "GET", "/v1/models/ctr/labels/" + "x" * 60_000, None, 400,
     "Unrecognized servable version label"),
    ("invalid UTF-8", "POST", PREDICT, b'{"instances": [{"item_id": "\xff\xfe"}]}', 400, "Invalid encoding"),
    ("lone surrogate", "POST", PREDICT, body({"signature_name": "\ud800", "instances": [GOOD]}), 400,
     "not found in signature def"),
    ("signature_name not a string", "POST", PREDICT, body({"signature_name": 1, "instances": [GOOD]}), 400,
     "'signature_name' key must be a string"),
    ("classify a predict signature", "POST", "/v1/models/ctr:classify", instances(GOOD), 400,
     "Expected classification signature"),
    ("unknown model", "POST", "/v1/models/nope:predict", instances(GOOD), 404, "Servable not found"),
    ("unknown version", "GET", "/v1/models/ctr/versions/999", None, 404, "Could not find version 999"),
    ("version over int64", "GET", "/v1/models/ctr/versions/99999999999999999999", None, 400,
     "Failed to convert version"),
    ("unknown verb", "POST", "/v1/models/ctr:explain", instances(GOOD), 400, "Malformed request"),
    ("unknown method", "PUT", "/v1/models/ctr", instances(GOOD), 400, "Malformed request"),
    ("outside the API", "GET", "/admin", None, 404, "Not found: GET /admin"),
]

RAW = [
    # (name, raw request bytes, whether the client stops sending after them, expected code, words)
    ("Content-Length too large for the limit",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{}", False, 413,
     "larger than the limit"),
    ("Content-Length not a number",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}", False, 400,
     "Bad Content-Length: 'ten'"),
    ("negative Content-Length",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", False, 400,
     "Bad Content-Length: '-5'"),
    ("Content-Length shorter than the body",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" + instances(GOOD), False,
     400, "JSON Parse error"),
    ("Content-Length longer than the body",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + instances(GOOD), True,
     400, "ended after"),
    ("chunked body",
     b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     False, 411, "Send a Content-Length"),
]


def send(url, method, path, payload):
    host, port = url.split("//", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def send_raw(url, request, stop_sending):
    """Writes raw bytes, optionally half-closes, reads the first response: (status, body)."""
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        if stop_sending:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read(int(response.getheader("Content-Length", "0")))


def check_error(code, payload, expected_code, words):
    document = json.loads(payload)
    assert code == expected_code, (code, document)
    assert list(document) == ["error"], document
    message = document["error"]
    assert words in message, message
    assert len(message) < MAX_MESSAGE, f"{len(message)} characters: {message[:300]}"


def good_request(server):
    names = client.input_names(client.RestClient(server.url).metadata())
    document = client.request_from_json([{ITEM: "i1", HISTORY: ["a"], TIMESTAMP: 5, PRICE: 1.5}], names)
    return client.scores_by_row(client.RestClient(server.url).predict(document), ["click", "conversion"])[0]


@pytest.mark.parametrize("name, method, path, payload, expected_code, words", CORPUS, ids=[c[0] for c in CORPUS])
def test_each_bad_request_gets_a_4xx_and_a_clear_error(server_process, name, method, path, payload, expected_code,
                                                      words):
    code, kind, answer = send(server_process.url, method, path, payload)
    assert kind == "application/json"
    check_error(code, answer, expected_code, words)


@pytest.mark.parametrize("name, request_bytes, stop_sending, expected_code, words", RAW, ids=[r[0] for r in RAW])
def test_broken_http_framing_gets_a_4xx_and_a_clear_error(server_process, name, request_bytes, stop_sending,
                                                         expected_code, words):
    code, answer = send_raw(server_process.url, request_bytes, stop_sending)
    check_error(code, answer, expected_code, words)


def test_the_server_stays_up_with_flat_memory_through_the_corpus(server_process):
    def one_round():
        for _, method, path, payload, expected_code, _ in CORPUS:
            assert send(server_process.url, method, path, payload)[0] == expected_code
        for _, request_bytes, stop_sending, expected_code, _ in RAW:
            assert send_raw(server_process.url, request_bytes, stop_sending)[0] == expected_code

    # Warm-up: handler threads, caches, and the malloc arenas that handler threads of
    # megabyte bodies grow once. A leak grows with every round after it; the arenas do not.
    for _ in range(WARM_UP_ROUNDS):
        one_round()
    # A leak grows RSS in both halves of the rounds alike; glibc growing an arena for a new
    # handler thread is a one-off step, so the smaller of the two halves' growths is what is
    # judged. Without a leak it was 0-1 MiB on an idle machine and up to 4.1 MiB in a CI run
    # with a training test on the other core; the bound leaves room for that.
    rss = [rss_bytes(server_process.process.pid)]
    for _ in range(2):
        for _ in range(ROUNDS // 2):
            one_round()
        rss.append(rss_bytes(server_process.process.pid))
    assert server_process.process.poll() is None
    scores = good_request(server_process)
    expected = testing.expected_scores({ITEM: "i1", HISTORY: ["a"], PRICE: 1.5})
    assert scores["click"] == pytest.approx(expected["click"], abs=1e-6) or scores["click"] == pytest.approx(
        testing.expected_scores({ITEM: "i1", HISTORY: ["a"], PRICE: 1.5}, bias=1.0)["click"], abs=1e-6)
    growth = min(rss[1] - rss[0], rss[2] - rss[1])
    assert growth < MAX_GROWTH, f"RSS grew in both halves of the rounds: {[round(r / 2**20, 1) for r in rss]} MiB"

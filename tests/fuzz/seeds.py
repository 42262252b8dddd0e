#!/usr/bin/env python3
# seeds - write the hand-made seed inputs of corpus/<target>/ (run from anywhere)
# SPDX-License-Identifier: MPL-2.0
#
# Valid messages as the unit tests and docs/protocol.md write them, plus
# edge cases next to each limit. Inputs found by fuzzing are added to the
# corpus by hand (crash-*, min-*) and are not written here. Overwrites only
# the files it names. Needs nothing beyond Python 3 (msgpack encoded here).
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def mp(v):
    """msgpack of v: None, bool, int, str, bytes, list, dict (smallest forms)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v <= 0xFF:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v <= 0xFFFF:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v <= 0xFFFFFFFF:
            return b"\xce" + struct.pack(">I", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        if len(v) < 256:
            return b"\xc4" + bytes([len(v)]) + v
        return b"\xc5" + struct.pack(">H", len(v)) + v
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ENV_DOC = {"v": 1, "k": 1, "svc": "billing", "mth": "subscription.get",
           "id": "4bf92f3577b34da6a3ce929d0e0e4736", "tp": TP, "dl": 1700000005000,
           "fl": 1, "ctx": {"sub": "user-42", "tier": "pro"}, "b": b'{"user":"ada","plan":"pro"}'}


def envelope():
    put("envelope", "protocol-example", mp(ENV_DOC))
    put("envelope", "min-request", mp({"v": 1, "k": 1, "svc": "auth", "mth": "login"}))
    put("envelope", "reply", mp({"v": 1, "k": 2, "id": "r1", "ctx": {"http_status": "201"},
                                 "b": b"\x81\xa2ok\xc3"}))
    put("envelope", "error", mp({"v": 1, "k": 3, "id": "r1", "ec": "timeout",
                                 "em": "deadline passed"}))
    put("envelope", "event-nil-body", mp({"v": 1, "k": 4, "svc": "telemetry", "mth": "span",
                                          "b": None}))
    put("envelope", "who-dropped", mp({"v": 1, "k": 1, "svc": "a", "mth": "b", "who": "gateway"}))
    put("envelope", "bad-version", mp({"v": 2, "k": 1, "svc": "a", "mth": "b"}))
    put("envelope", "nul-in-string", mp({"v": 1, "k": 1, "svc": "a\0b", "mth": "b"}))
    put("envelope", "svc-63", mp({"v": 1, "k": 1, "svc": "s" * 63, "mth": "b"}))
    put("envelope", "svc-64", mp({"v": 1, "k": 1, "svc": "s" * 64, "mth": "b"}))
    put("envelope", "ctx-16", mp({"v": 1, "k": 1, "svc": "a", "mth": "b",
                                  "ctx": {"k%02d" % i: "v" for i in range(16)}}))
    put("envelope", "ctx-dup-key", b"\x84" + mp("v") + mp(1) + mp("k") + mp(1) + mp("svc") +
        mp("a") + mp("ctx") + b"\x82" + mp("x") + mp("1") + mp("x") + mp("2"))
    put("envelope", "dl-int64-max", mp({"v": 1, "k": 1, "svc": "a", "mth": "b",
                                        "dl": 2**63 - 1}))
    put("envelope", "dl-negative", mp({"v": 1, "k": 1, "svc": "a", "mth": "b", "dl": -1}))
    put("envelope", "bin32-length-lie", b"\x83" + mp("v") + mp(1) + mp("k") + mp(1) + mp("b") +
        b"\xc6\xff\xff\xff\xf0")
    put("envelope", "map32-count-lie", b"\xdf\xff\xff\xff\xff" + mp("v") + mp(1))


def batch():
    items = [b"\x81\xa3key\xa4abcd", b"", b"x" * 300]
    put("batch", "request-3", mp(items))
    put("batch", "request-1-empty", mp([b""]))
    put("batch", "request-256", mp([b"i"] * 256))
    put("batch", "request-257", mp([b"i"] * 257))
    put("batch", "reply-mixed", mp([["", b"\x81\xa2ok\xc3"], ["not_found", "no such key"],
                                    ["", b""]]))
    put("batch", "reply-code-nul", mp([["a\0b", "m"]]))
    put("batch", "empty-array", b"\x90")
    put("batch", "not-array", mp({"k": 1}))
    put("batch", "bin32-lie", b"\x91\xc6\xff\xff\xff\xff")
    put("batch", "trailing", b"\x91\xc4\x00\x00")
    put("batch", "array32-lie", b"\xdd\xff\xff\xff\xff")
    put("batch", "reply-wrong-payload", b"\x91\x92\xa0\xa1x")
    put("batch", "bundle-of-envelopes", mp([mp(ENV_DOC), mp({"v": 1, "k": 1, "svc": "billing",
                                                             "mth": "subscription.get"})]))


def json():
    docs = {
        "login": '{"email":"ada@example.com","password":"correct horse battery staple"}',
        "jwks": '{"keys":[{"kty":"EC","crv":"P-256","x":"abc","y":"def","kid":"k1"}]}',
        "nested": '{"a":[1,2,{"b":[true,false,null]}],"c":{"d":{"e":"f"}}}',
        "numbers": '[0,-0,1,-1,9223372036854775807,-9223372036854775808,9223372036854775808,'
                   '1.5,-2.25e-3,1E+2,5e-324,1.7976931348623157e308,0.1,123456789012345678901]',
        "escapes": '["\\"\\\\\\/\\b\\f\\n\\r\\t","\\u00e9\\u20ac","\\ud83d\\ude00","caf\u00e9"]',
        "lone-surrogate": '["\\ud800"]',
        "nul-escape": '["a\\u0000b"]',
        "duplicate-key": '{"a":1,"a":2}',
        "bom": '\ufeff{}',
        "overlong-utf8": b'["\xc0\xaf"]',
        "leading-zero": '[01]',
        "huge-exponent": '[1e400]',
        "trailing-comma": '[1,2,]',
        "two-values": '{} {}',
        "deep-32": '[' * 32 + ']' * 32,
        "deep-33": '[' * 33 + ']' * 33,
        "whitespace": ' \t\n\r{ "a" : [ ] } \n',
        "empty": '',
        "control-in-string": '["a\x01b"]',
        "nan": '[NaN]',
    }
    for name, text in docs.items():
        put("json", name, text)


def jwt():
    #  Mode byte 0: a token as received (verified with the fixed key k1).
    put("jwt", "token-alg-none", "\x00eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln")
    put("jwt", "token-two-parts", "\x00eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0")
    put("jwt", "token-bad-sig", "\x00eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0." +
        "A" * 86)
    put("jwt", "token-unknown-kid", "\x00eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vIn0.e30.AAAA")
    put("jwt", "token-padding", "\x00eyJhbGciOiJFUzI1NiJ9==.e30.AAAA")
    #  Mode byte 1: header and payload JSON, signed by the target with k1.
    hdr = '{"alg":"ES256","typ":"JWT","kid":"k1"}'
    ok = ('{"iss":"https://auth.vizmesh.local","sub":"user-42","aud":"vizmesh",'
          '"scope":"profile:read keys:write","tier":"free","jti":"j1","iat":1699999990,'
          '"exp":1700000600}')
    put("jwt", "signed-valid", "\x01" + hdr + "\n" + ok)
    put("jwt", "signed-aud-array", "\x01" + hdr + "\n" + ok.replace(
        '"aud":"vizmesh"', '"aud":["other","vizmesh"]'))
    put("jwt", "signed-client", "\x01" + hdr + "\n" + ok.replace('"jti":"j1"',
                                                                 '"client_id":"c1","nbf":1699999000'))
    put("jwt", "signed-expired", "\x01" + hdr + "\n" + ok.replace("1700000600", "1699999000"))
    put("jwt", "signed-exp-int64-max", "\x01" + hdr + "\n" +
        ok.replace("1700000600", "9223372036854775807"))
    put("jwt", "signed-nbf-int64-max", "\x01" + hdr + "\n" +
        ok.replace('"iat":1699999990', '"nbf":9223372036854775807'))
    put("jwt", "signed-exp-float", "\x01" + hdr + "\n" + ok.replace("1700000600", "1700000600.5"))
    put("jwt", "signed-sub-not-string", "\x01" + hdr + "\n" + ok.replace('"user-42"', '42'))
    put("jwt", "signed-alg-hs256", "\x01" + '{"alg":"HS256","kid":"k1"}' + "\n" + ok)
    put("jwt", "signed-crit", "\x01" + '{"alg":"ES256","kid":"k1","crit":["exp"]}' + "\n" + ok)
    put("jwt", "signed-scope-1023", "\x01" + hdr + "\n" +
        ok.replace("profile:read keys:write", "s" * 1023))
    put("jwt", "signed-scope-1024", "\x01" + hdr + "\n" +
        ok.replace("profile:read keys:write", "s" * 1024))
    #  Mode byte 2: base64url text.
    put("jwt", "b64-canonical", "\x02eyJhbGciOiJFUzI1NiJ9")
    put("jwt", "b64-unused-bits", "\x02QR")
    put("jwt", "b64-bad-length", "\x02Q")
    put("jwt", "b64-std-alphabet", "\x02ab+/")


def jwks():
    x = "HiDjv_gvxjCEvKvTctZm_iwHcq9QZZQwgF-vMo823nI"
    y = "9oguNN3XysxmA1v0CtOQ-OCSVKi0XPDm7ChVKajHraM"
    key = '{"kty":"EC","crv":"P-256","x":"%s","y":"%s","kid":"k1","alg":"ES256","use":"sig"}'
    put("jwks", "one-key", '{"keys":[%s]}' % (key % (x, y)))
    put("jwks", "with-rsa", '{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r1"},%s]}' %
        (key % (x, y)))
    put("jwks", "repeated-kid", '{"keys":[%s,%s]}' % (key % (x, y), key % (x, y)))
    put("jwks", "bad-point", '{"keys":[%s]}' % (key % (x, x)))
    put("jwks", "short-x", '{"keys":[%s]}' % (key % (x[:-2], y)))
    put("jwks", "no-kid", '{"keys":[{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}]}' % (x, y))
    put("jwks", "empty", '{"keys":[]}')
    put("jwks", "not-object", '[]')
    put("jwks", "kid-64", '{"keys":[%s]}' % (key % (x, y)).replace('"k1"', '"' + "k" * 64 + '"'))


def config():
    put("config", "full", 'service\n    name = "billing"\n    port = "8443"\n'
        '    debug = "yes"\n    timeout = "250ms"\nbroker\n'
        '    endpoint = "tcp://broker:5555,ipc:///tmp/b.sock"\n    bind = "tcp://*:0"\n'
        'log\n    level = "-3"\nauth\n    secret = "s3cret"\n')
    put("config", "minimal", 'auth\n    secret = "x"\n')
    put("config", "missing-required", 'service\n    name = "x"\n')
    put("config", "comments-quotes", '#   a comment\nauth\n    secret = \'single "q"\'   # tail\n'
        'service\n    name = "with # hash"\n')
    put("config", "ipv6", 'auth\n    secret = "x"\nbroker\n    endpoint = "tcp://[::1]:5555"\n')
    put("config", "bad-port", 'auth\n    secret = "x"\nservice\n    port = "65536"\n')
    put("config", "ms-units", 'auth\n    secret = "x"\nservice\n    timeout = "1h"\n')
    put("config", "ms-overflow", 'auth\n    secret = "x"\nservice\n'
        '    timeout = "9223372036854775807h"\n')
    put("config", "long-secret", 'auth\n    secret = "0123456789abcdef"\n')
    put("config", "section-as-value", 'auth\n    secret\n        deeper = "x"\n')
    put("config", "endpoint-trailing-comma", 'auth\n    secret = "x"\nbroker\n'
        '    endpoint = "tcp://a:1,"\n')
    put("config", "not-zpl", 'auth\n  secret = "x"\n   bad = \n')
    put("config", "env-ref", 'auth\n    secret = "${HOME}"\n')
    put("config", "nul-byte", b'auth\n    secret = "x\x00y"\n')


def gateway():
    for name, line in {
        "get-echo": "GET /v1/echo", "post-echo": "POST /v1/echo", "root": "GET /",
        "param": "GET /v1/auth/api-keys/ak_123", "delete-param": "DELETE /v1/auth/api-keys/ak_1",
        "wrong-method": "PATCH /v1/echo", "unknown-method": "BREW /v1/echo",
        "double-slash": "GET /v1//echo", "trailing-slash": "GET /v1/echo/",
        "no-slash": "GET v1/echo", "dots": "GET /v1/../v1/echo", "percent": "GET /v1/%65cho",
        "long-seg": "GET /v1/" + "a" * 300, "many-segs": "GET " + "/a" * 20,
        "literal-wins": "GET /v1/echo/me", "health": "GET /health", "empty": "",
    }.items():
        put("gateway_path", name, line)
    with open(os.path.join(HERE, "..", "..", "configs", "routes.cfg")) as f:
        put("gateway_routes", "shipped", f.read())
    route = ('routes\n    r1\n        methods = "GET POST"\n        path = "/v1/x/{id}"\n'
             '        service = "x"\n        call = "get"\n')
    put("gateway_routes", "one", route)
    put("gateway_routes", "clash", route + route.replace("    r1", "    r2", 1).split("routes\n")[1])
    put("gateway_routes", "root", route.replace("/v1/x/{id}", "/"))
    put("gateway_routes", "param-repeated", route.replace("/v1/x/{id}", "/{a}/{a}"))
    put("gateway_routes", "five-params", route.replace("/v1/x/{id}", "/{a}/{b}/{c}/{d}/{e}"))
    put("gateway_routes", "sixteen-segs", route.replace("/v1/x/{id}", "/s" * 16))
    put("gateway_routes", "seventeen-segs", route.replace("/v1/x/{id}", "/s" * 17))
    put("gateway_routes", "full", route.replace('call = "get"\n', 'call = "get"\n'
        '        auth = "any"\n        scopes = "a b"\n        rate_class = "default"\n'
        '        timeout = "2s"\n        retry = "idempotent"\n        max_body = "1024"\n'
        '        accept = "application/json"\n        json = "true"\n'
        '        headers = "x-tenant if-match"\n        reply_type = "text/plain"\n'))
    put("gateway_routes", "bad-methods", route.replace("GET POST", "GET BREW"))
    put("gateway_routes", "empty", "")


def ratelimit():
    full = {"ip": "203.0.113.7", "sub": "user-42", "key": "ak_1", "tier": "free",
            "route": "echo", "cost": 1}
    put("ratelimit", "full", mp(full))
    put("ratelimit", "anonymous", mp({"ip": "198.51.100.1", "tier": "anonymous",
                                      "route": "auth_login"}))
    put("ratelimit", "empty-body", b"")
    put("ratelimit", "empty-map", b"\x80")
    put("ratelimit", "nil-fields", mp({"ip": "1.2.3.4", "sub": None, "key": None}))
    put("ratelimit", "unknown-nested", mp({"ip": "1.2.3.4", "x": [1, {"y": [2, [3]]}],
                                           "route": "echo"}))
    put("ratelimit", "cost-max", mp(dict(full, cost=1000000)))
    put("ratelimit", "cost-over", mp(dict(full, cost=1000001)))
    put("ratelimit", "cost-negative", mp(dict(full, cost=-1)))
    put("ratelimit", "ip-63", mp(dict(full, ip="1" * 63)))
    put("ratelimit", "ip-64", mp(dict(full, ip="1" * 64)))
    put("ratelimit", "sub-255", mp(dict(full, sub="u" * 255)))
    put("ratelimit", "nul-in-sub", mp(dict(full, sub="a\0b")))
    put("ratelimit", "colon-in-fields", mp(dict(full, sub="a:sub=3:x", key="")))
    put("ratelimit", "map16-lie", b"\xde\xff\xff" + mp("ip") + mp("x"))
    put("ratelimit", "deep-skip", mp({"x": [[[[[[[[[[1]]]]]]]]]]}))
    put("ratelimit", "trailing", mp(full) + b"\x00")
    put("ratelimit", "not-map", mp([1, 2]))


def telemetry():
    head = ('{"v":1,"service":"echo","replica":0,"pid":1,"t":1796630400000,"interval_ms":10000,'
            '"seq":7,"lost":0,"dropped":0,"sat":{"cpu":0.12,"rss":4096000,"fds":14},')
    row = '{"name":"echo","count":3,"sum_us":340,"codes":{"ok":2,"invalid_request":1},' \
          '"bins":[[0,1],[200,2]]}'
    put("telemetry", "full", head + '"series":[' + row + '],"users":["u_1"],"users_over":0}')
    put("telemetry", "no-users", head + '"series":[]}')
    put("telemetry", "bin-last", head + '"series":[{"name":"x","count":1,"sum_us":1,'
        '"codes":{"ok":1},"bins":[[1023,1]]}]}')
    put("telemetry", "bin-over", head + '"series":[{"name":"x","count":1,"sum_us":1,'
        '"codes":{"ok":1},"bins":[[1024,1]]}]}')
    put("telemetry", "codes-disagree", head + '"series":[{"name":"x","count":1,"sum_us":1,'
        '"codes":{"ok":2},"bins":[[0,1]]}]}')
    put("telemetry", "name-64", '{"v":1,"service":"' + "s" * 64 + '"}')
    put("telemetry", "version-2", '{"v":2}')
    put("telemetry", "duplicate-key", head + '"series":[],"lost":0}')
    put("telemetry", "truncated", head[:40])


def notifier():
    put("notifier", "alert", '{"channel":"pagerduty","to":"","template":"slo_alert",'
        '"severity":"critical","idempotency_key":"slo/api/page/1/trigger","data":'
        '{"dedup_key":"slo/api/page","event_action":"trigger","burn_rate":14.4,"fired_at":1}}')
    put("notifier", "email-full", '{"channel":"email","template":"welcome","to":[{"name":"Ann",'
        '"address":"ann@example.com"},"bob@example.com"],"data":{"who":"Ann"},"severity":"info",'
        '"event_action":"resolve","dedup_key":"d","source":"billing","attachments":[{"name":'
        '"a.txt","type":"text/plain","content":"aGk=","content_id":"c1"}]}')
    put("notifier", "wrong-types", '{"channel":1,"template":[],"severity":2,'
        '"idempotency_key":null,"data":"x"}')
    put("notifier", "not-object", '[1]')
    put("notifier", "reply", '{"id":"n_0123456789abcdef01234567","status":"queued",'
        '"duplicate":false}')
    put("notifier", "reply-bad-id", '{"id":"n_1","status":"queued","duplicate":true}')


if __name__ == "__main__":
    for fn in (envelope, batch, json, jwt, jwks, config, gateway, ratelimit, telemetry, notifier):
        fn()
    sys.exit(0)

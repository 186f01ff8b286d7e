"""Calls mttx's PagerDuty-compatible Analytics API through PagerDuty's own Python client.

Reads {"port": int, "token": str, "calls": [...]} as JSON on stdin and prints {name: answer}
as JSON. Each call is made with the client's own methods:
- {"name", "method": "rpost", "path", "body"}: client.rpost(path, json=body)
- {"name", "method": "rget", "path"}: client.rget(path)
- {"name", "method": "iter", "filters", "limit", "order", "order_by", "time_zone"}:
  every incident of client.iter_analytics_raw_incidents(...)
- {"name", "method": "back", "body"}: pages raw incidents to the end with starting_after,
  then back to the start with ending_before (client.jpost), answering the ids both ways
- {"name", "method": "fail", "path", "body"} (or "get": true, no body): client.jpost (or
  jget); answers the status and body of the pagerduty.HttpError it raises

PagerDuty's client accepts only https:// base URLs; the transport here sends the same
requests to the plain-HTTP test server on loopback (scheme and host rewritten, nothing
else touched).
"""

import json
import sys

import httpx2
import pagerduty


class Loopback(httpx2.BaseTransport):
    def __init__(self, port):
        self.port = port
        self.inner = httpx2.HTTPTransport()

    def handle_request(self, request):
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)


def main():
    asked = json.load(sys.stdin)
    client = pagerduty.RestApiV2Client(asked["token"], transport=Loopback(asked["port"]))
    client.retry[429] = 0
    out = {}
    for call in asked["calls"]:
        name, method = call["name"], call["method"]
        if method == "rpost":
            out[name] = client.rpost(call["path"], json=call["body"])
        elif method == "rget":
            out[name] = client.rget(call["path"])
        elif method == "iter":
            out[name] = list(
                client.iter_analytics_raw_incidents(
                    call["filters"],
                    order=call.get("order", "desc"),
                    order_by=call.get("order_by", "created_at"),
                    limit=call.get("limit"),
                    time_zone=call.get("time_zone"),
                )
            )
        elif method == "back":
            body = dict(call["body"])
            forward, pages = [], []
            while True:
                page = client.jpost("/analytics/raw/incidents", json=body)
                pages.append(page)
                forward += [i["id"] for i in page["data"]]
                if not page["more"]:
                    break
                body["starting_after"] = page["last"]
            body.pop("starting_after", None)
            backward, first = [], pages[-1]["first"]
            while first is not None:
                body["ending_before"] = first
                page = client.jpost("/analytics/raw/incidents", json=body)
                backward = [i["id"] for i in page["data"]] + backward
                first = page["first"] if page["more"] else None
            out[name] = {"forward": forward, "backward": backward + [i["id"] for i in pages[-1]["data"]], "pages": len(pages)}
        elif method == "fail":
            try:
                if call.get("get"):
                    client.jget(call["path"])
                else:
                    client.jpost(call["path"], json=call["body"])
                out[name] = {"status": 200}
            except pagerduty.HttpError as e:
                out[name] = {"status": e.response.status_code, "body": e.response.json()}
        else:
            raise SystemExit(f"unknown method {method}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""Sequential latency of API calls over one keep-alive connection: for each path, WARM calls
discarded, then RUNS timed; prints `name runs p50_ms p99_ms` like the engine's bench.

    python3 benches/http_latency.py HOST:PORT TOKEN RUNS name=PATH [name=PATH ...]

Run the server with --cache-mib 0 so that every answer is computed.
"""
import http.client
import statistics
import sys
import time

WARM = 3


def main():
    address, token, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = address.rsplit(":", 1)
    con = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Authorization": f"Bearer {token}"}
    for spec in sys.argv[4:]:
        name, path = spec.split("=", 1)
        times = []
        for i in range(WARM + runs):
            t = time.perf_counter()
            con.request("GET", path, headers=headers)
            response = con.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - t) * 1e3
            if response.status != 200:
                sys.exit(f"{path}: {response.status} {body[:300]!r}")
            if i >= WARM:
                times.append(elapsed)
        times.sort()
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        print(f"{name} {runs} {statistics.median(times):.2f} {p99:.2f}")


if __name__ == "__main__":
    main()

public import HTTPServer
import Metrics
public import Prometheus
public import NIOHTTP1

extension Router {
    /// Adds `GET /metrics`: the Prometheus text format (0.0.4) of the registry behind the current metrics factory.
    /// Without a Prometheus factory (nothing bootstrapped) the body is empty.
    public mutating func addMetricsRoute() {
        addMetricsRoute(registry: ServiceMetrics.currentRegistry)
    }

    /// Adds `GET /metrics` serving `registry` (an empty body when nil).
    public mutating func addMetricsRoute(registry: PrometheusCollectorRegistry?) {
        add(.GET, "/metrics") { _ in
            HTTPResponse(
                status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                body: registry?.emitToBuffer() ?? [])
        }
    }
}

extension HTTPServerConfiguration {
    /// This configuration with every answered request recorded by an ``HTTPMetrics`` made now (after the hook it
    /// already has, if any).
    public func recordingMetrics() -> HTTPServerConfiguration {
        var configuration = self
        let metrics = HTTPMetrics()
        let previous = onResponse
        configuration.onResponse = { method, route, status, duration in
            previous?(method, route, status, duration)
            metrics.record(method: method, route: route, status: status, duration: duration)
        }
        return configuration
    }
}

/// `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`.
///
/// `route` is the matched pattern (`/users/{id}`) or `unmatched`, never the path, and `method` a standard method or
/// `other`, so the label sets stay bounded: one series per route, method and status actually answered.
public final class HTTPMetrics: Sendable {
    private let requests = MetricFamily(counter: "http_requests_total", varying: ["method", "route", "status"])
    private let durations = MetricFamily(timer: "http_request_duration_seconds", varying: ["method", "route"])

    /// Creates the recorder; its series are made with the factory current now.
    public init() {}

    /// Records one answered request. A method outside HTTP's standard ones is counted as `other`: the client
    /// chooses it, and a label must neither grow without bound nor carry the client's text.
    public func record(method: HTTPMethod, route: String, status: HTTPResponseStatus, duration: Duration) {
        let method = Self.standardMethods.contains(method.rawValue) ? method.rawValue : "other"
        requests.labelled(method, route, "\(status.code)").increment()
        durations.labelled(method, route).record(duration: duration)
    }

    private static let standardMethods: Set<String> = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ]
}

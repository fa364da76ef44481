public import HTTPServer
import Metrics
public import Prometheus
public import NIOHTTP1
import Synchronization

/// The process's metrics backend: swift-metrics recording into a Prometheus registry, served as `GET /metrics`.
///
/// Libraries and services record only through swift-metrics (`Counter`, `Timer`, `Gauge`); this is the one place
/// that knows about Prometheus. Metric objects bind to the factory current when they are created, so a service
/// creates them while it is assembled: after ``bootstrap()`` in a process, or inside
/// `withMetricsFactory(ServiceMetrics.makeFactory(registry:))` in a test that wants a registry of its own.
public enum ServiceMetrics {
    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Buckets for every `Timer` without buckets of its own: 1 ms to 10 s.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Buckets for `event_lag_seconds`, which spans a broker outage too: 5 ms to 5 minutes.
    static let lagBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(300),
    ]

    /// Makes swift-metrics record into a new Prometheus registry for the rest of the process, and returns it.
    ///
    /// Call it once from `run()`, before the app is built; later calls return the same registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        bootstrapped.withLock { current in
            if let current { return current }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(makeFactory(registry: registry))
            current = registry
            return registry
        }
    }

    /// A Prometheus factory recording into `registry`, with this project's histogram buckets.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        factory.durationHistogramBuckets[MetricName.eventLag] = lagBuckets
        return factory
    }

    /// The registry behind the current factory (task-local or bootstrapped), when that factory is Prometheus.
    static var currentRegistry: PrometheusCollectorRegistry? {
        (MetricsSystem.factory as? PrometheusMetricsFactory)?.registry
    }
}

/// Metric names shared by more than one module or referred to by tests and the README.
public enum MetricName {
    /// Histogram: time from an event's `occurred_at` to the order service's commit of it.
    public static let eventLag = "event_lag_seconds"
}

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
/// `route` is the matched pattern (`/users/{id}`) or `unmatched`, never the path, so the label sets stay bounded:
/// one series per route, method and status actually answered. Each series' metric objects are made on its first
/// request and then reused from a dictionary.
public final class HTTPMetrics: Sendable {
    private struct Key: Hashable {
        var method: String
        var route: String
        var status: UInt
    }

    private struct Series {
        var requests: [Key: Metrics.Counter] = [:]
        var durations: [String: Metrics.Timer] = [:]
    }

    private let factory: any MetricsFactory
    private let series = Mutex(Series())

    /// Creates the recorder; its series are made with the factory current now.
    public init() {
        factory = MetricsSystem.factory
    }

    /// Records one answered request.
    public func record(method: HTTPMethod, route: String, status: HTTPResponseStatus, duration: Duration) {
        let key = Key(method: method.rawValue, route: route, status: status.code)
        let (counter, timer) = series.withLock { series in
            let counter =
                series.requests[key]
                ?? {
                    let made = Metrics.Counter(
                        label: "http_requests_total",
                        dimensions: [("method", key.method), ("route", key.route), ("status", "\(key.status)")],
                        factory: factory)
                    series.requests[key] = made
                    return made
                }()
            let timerKey = "\(key.method) \(key.route)"
            let timer =
                series.durations[timerKey]
                ?? {
                    let made = Metrics.Timer(
                        label: "http_request_duration_seconds",
                        dimensions: [("method", key.method), ("route", key.route)], factory: factory)
                    series.durations[timerKey] = made
                    return made
                }()
            return (counter, timer)
        }
        counter.increment()
        timer.record(duration: duration)
    }
}

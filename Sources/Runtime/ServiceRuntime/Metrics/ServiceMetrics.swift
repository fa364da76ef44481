import Metrics
public import Prometheus
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

/// Metric names shared by more than one module or referred to by tests and docs/OPERATIONS.md.
public enum MetricName {
    /// Histogram: time from an event's `occurred_at` to the order service's commit of it.
    public static let eventLag = "event_lag_seconds"
}

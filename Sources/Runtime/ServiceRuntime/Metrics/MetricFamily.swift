public import Metrics
import Synchronization

/// The metrics of one name that differ by the values of some labels, e.g. `events_forwarded_total{destination}`:
/// each series is made on its first use and reused after, with the factory that was current when the family was made.
///
/// The label values must come from a bounded set (queue names, route patterns, fixed codes), never from message
/// content, or the number of series grows without bound.
public final class MetricFamily<Metric: Sendable>: Sendable {
    private let label: String
    private let fixed: [(String, String)]
    private let varying: [String]
    private let factory: any MetricsFactory
    private let make: @Sendable (String, [(String, String)], any MetricsFactory) -> Metric
    private let series = Mutex<[[String]: Metric]>([:])

    /// Creates the family of `label`: every series carries the `fixed` labels, then the `varying` ones in this order.
    public init(
        label: String, fixed: [(String, String)] = [], varying: [String],
        make: @escaping @Sendable (String, [(String, String)], any MetricsFactory) -> Metric
    ) {
        self.label = label
        self.fixed = fixed
        self.varying = varying
        self.make = make
        factory = MetricsSystem.factory
    }

    /// The series whose varying labels have `values` (one per name given to `init`, in that order).
    public func labelled(_ values: String...) -> Metric {
        precondition(values.count == varying.count, "\(label) takes \(varying.count) label value(s)")
        return series.withLock { series in
            if let metric = series[values] { return metric }
            let metric = make(label, fixed + Array(zip(varying, values)), factory)
            series[values] = metric
            return metric
        }
    }
}

extension MetricFamily where Metric == Counter {
    /// A family of counters.
    public convenience init(counter label: String, fixed: [(String, String)] = [], varying: [String]) {
        self.init(label: label, fixed: fixed, varying: varying) { label, dimensions, factory in
            Counter(label: label, dimensions: dimensions, factory: factory)
        }
    }
}

extension MetricFamily where Metric == Metrics.Timer {
    /// A family of timers (histograms of durations in the Prometheus backend).
    public convenience init(timer label: String, fixed: [(String, String)] = [], varying: [String]) {
        self.init(label: label, fixed: fixed, varying: varying) { label, dimensions, factory in
            Metrics.Timer(label: label, dimensions: dimensions, factory: factory)
        }
    }
}

public import Foundation
public import Histogram

/// Latency percentiles of one set of measurements, in milliseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    /// How many values.
    public var count: Int
    /// Median.
    public var p50: Double
    /// 90th percentile.
    public var p90: Double
    /// 99th percentile.
    public var p99: Double
    /// 99.9th percentile.
    public var p999: Double
    /// Largest value (exact).
    public var max: Double
    /// Mean.
    public var mean: Double

    /// Summarises values given in microseconds through an HDR histogram (three significant digits).
    public init(microseconds values: some Sequence<UInt64>) {
        var histogram = Self.makeHistogram()
        var largest: UInt64 = 0
        for value in values {
            _ = histogram.record(min(value, Self.highest))
            largest = Swift.max(largest, value)
        }
        self.init(histogram: histogram, exactMax: largest)
    }

    /// Summarises a histogram of microseconds; `exactMax` overrides its (bucketed) maximum when given.
    public init(histogram: Histogram<UInt64>, exactMax: UInt64? = nil) {
        count = Int(histogram.totalCount)
        guard count > 0 else {
            p50 = 0; p90 = 0; p99 = 0; p999 = 0; max = 0; mean = 0
            return
        }
        func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
        p50 = ms(histogram.valueAtPercentile(50))
        p90 = ms(histogram.valueAtPercentile(90))
        p99 = ms(histogram.valueAtPercentile(99))
        p999 = ms(histogram.valueAtPercentile(99.9))
        max = ms(exactMax ?? histogram.max)
        mean = histogram.mean / 1000
    }

    /// Values above an hour are recorded as an hour.
    static let highest: UInt64 = 3_600_000_000

    /// The histogram every latency in the benchmark goes into: 1 µs to 1 h, three significant digits.
    public static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .three)
    }
}

/// One load phase (closed loop at some concurrency, or open loop at some rate).
public struct LoadPhaseReport: Codable, Sendable {
    /// E.g. `closed-16` or `open`.
    public var name: String
    /// `closed`, `open` or `warmup`.
    public var kind: String
    /// Keep-alive connections.
    public var connections: Int
    /// Open loop: the intended rate, requests per second.
    public var targetRate: Double?
    /// Wall seconds the phase took.
    public var seconds: Double
    /// Requests sent (with or without an answer).
    public var requests: Int
    /// Requests answered 201.
    public var created: Int
    /// Requests per second (all answers).
    public var requestsPerSecond: Double
    /// Latency of every request; open loop: from the intended send time.
    public var latency: LatencySummary
    /// Requests that were not 201, by status (`"409"`, ...) or transport error (`"connect"`, `"read"`, ...).
    public var errors: [String: Int]
    /// Connections opened (more than `connections` means the server closed some).
    public var connects: Int
    /// Open loop: requests sent over 1 ms after their intended time because every connection was busy.
    public var lateSends: Int?
    /// Open loop: the latest send, in milliseconds after its intended time.
    public var maxLatenessMs: Double?
}

/// Events from the user service's commit to the order service's snapshot commit, read from `user_snapshots`.
public struct EndToEndReport: Codable, Sendable {
    /// `whole run` or a phase's name.
    public var scope: String
    /// Snapshots found for the scope.
    public var events: Int
    /// Requests answered 201 in the scope (should equal `events`).
    public var created: Int
    /// Events per second from the scope's first POST until its last snapshot commit.
    public var eventsPerSecond: Double
    /// Seconds from the scope's first POST until its last snapshot commit.
    public var seconds: Double
    /// `updated_at - occurred_at` (millisecond resolution).
    public var lag: LatencySummary
}

/// The broker's two-queue ceiling: the best shape any client can use (batched confirmed publishes to A, a forwarder
/// that republishes A to B in batches inside a confirm window and acks with `multiple`, a drain of B with `multiple`
/// acks), driven by rabbitmq-c alone; beside it the project's `Messaging` module in that same shape.
public struct CeilingReport: Codable, Sendable {
    /// Messages sent through A and B.
    public var messages: Int
    /// Body size of each, in bytes.
    public var bodyBytes: Int
    /// Prefetch of both consumers (the forwarder's confirm window).
    public var prefetch: Int
    /// Messages per confirmed publish batch to A.
    public var batchSize: Int
    /// rabbitmq-c: from the first publish to the last message taken from B.
    public var seconds: Double
    /// rabbitmq-c: messages per second through both queues. The yardstick.
    public var messagesPerSecond: Double
    /// rabbitmq-c: publish rate to A alone (confirmed), while forwarding ran.
    public var publishPerSecond: Double
    /// Which client measured `messagesPerSecond`: `rabbitmq-c` (reports before it have none: their ceiling was
    /// the `Messaging` module in the router's one-at-a-time shape).
    public var client: String?
    /// `classic` or `quorum`.
    public var queueType: String?
    /// The `Messaging` module in the same shape: messages per second through both queues.
    public var messagingMessagesPerSecond: Double?
    /// The `Messaging` module in the same shape: seconds.
    public var messagingSeconds: Double?
    /// `messagingMessagesPerSecond / messagesPerSecond`: how much of the broker our client reaches.
    public var messagingFraction: Double?
    /// The system's whole-run end-to-end events/s as a fraction of `messagesPerSecond`.
    public var systemFraction: Double?
    /// The best phase's end-to-end events/s as a fraction of `messagesPerSecond`.
    public var bestPhaseFraction: Double?
}

/// CPU and context switches one process used during one phase (summed over its threads).
public struct ProcessCost: Codable, Sendable, Equatable {
    /// Process name, as in ``ProcessReport``.
    public var name: String
    /// utime + stime of its threads over the phase, in seconds.
    public var cpuSeconds: Double
    /// Voluntary + involuntary context switches of its threads over the phase.
    public var contextSwitches: Int
    /// CPU milliseconds per event created in the phase.
    public var cpuMsPerEvent: Double?
    /// Context switches per event created in the phase.
    public var switchesPerEvent: Double?
}

/// What each process spent per event in one phase: sampled from `/proc/<pid>/task/*/{stat,status}` when the
/// phase's load began and again once the order service had committed the phase's last snapshot.
public struct PhaseCostReport: Codable, Sendable, Equatable {
    /// The phase (`closed-1`, `open`, `idle`, ...).
    public var phase: String
    /// Seconds between the two samples.
    public var seconds: Double
    /// Users created (201) in the phase.
    public var events: Int
    /// Every tracked process: the services, then the broker and the load generator when tracked.
    public var processes: [ProcessCost]
    /// The services (not the broker or the generator) summed: CPU milliseconds per event.
    public var cpuMsPerEvent: Double?
    /// The services summed: context switches per event.
    public var switchesPerEvent: Double?
    /// The services summed: CPU as a percentage of one core over the phase.
    public var cpuPercent: Double
}

/// One of the targets, met or missed in this run.
public struct TargetCheck: Codable, Sendable, Equatable {
    /// What is measured, e.g. `CPU per event, services summed, closed-64`.
    public var name: String
    /// The bound, in `unit`.
    public var limit: Double
    /// Whether the measured value must be at most (`<=`) or at least (`>=`) the limit.
    public var comparison: String
    /// The unit of `limit` and `measured`.
    public var unit: String
    /// This run's value; nil when the run did not measure it (phase not run, ceiling not measured).
    public var measured: Double?
    /// nil when not measured.
    public var met: Bool?
}

/// CPU and memory of one process.
public struct ProcessReport: Codable, Sendable {
    /// `user-service`, ..., or `rabbitmq` (the broker, when its pid is known).
    public var name: String
    /// VmHWM at the end, in MiB.
    public var peakRSSMiB: Double
    /// utime + stime from start to end, in seconds.
    public var cpuSeconds: Double
    /// CPU seconds used during the idle interval at the end.
    public var idleCPUSeconds: Double?
    /// CPU milliseconds per event created during the run.
    public var cpuMsPerEvent: Double?
}

/// One second of the run, for the chart.
public struct TimelinePoint: Codable, Sendable {
    /// Seconds since the first phase started.
    public var second: Int
    /// Responses received in this second (by send time).
    public var requests: Int
    /// Of which not 201.
    public var errors: Int
    /// Latency median of requests sent in this second, ms.
    public var p50: Double?
    /// Latency 99th percentile of requests sent in this second, ms.
    public var p99: Double?
    /// Snapshots committed by the order service in this second.
    public var snapshots: Int
    /// Median commit-to-snapshot lag of those snapshots, ms.
    public var lagP50: Double?
    /// CPU used in this second, percent of one core, by process name.
    public var cpu: [String: Double]
    /// Context switches (voluntary + involuntary, all threads) in this second, by process name.
    public var contextSwitches: [String: Double]?
}

/// A phase's place on the timeline.
public struct PhaseSpan: Codable, Sendable {
    /// Phase name.
    public var name: String
    /// Seconds since the first phase started.
    public var start: Double
    /// Seconds since the first phase started.
    public var end: Double
}

/// Everything one benchmark run measured; written as JSON.
public struct BenchmarkReport: Codable, Sendable {
    /// When the run started.
    public var startedAt: String
    /// Host facts: cores, kernel.
    public var machine: [String: String]
    /// The options the run used.
    public var settings: [String: String]
    /// Load phases, in order.
    public var phases: [LoadPhaseReport] = []
    /// Whole run first, then one entry per phase.
    public var endToEnd: [EndToEndReport] = []
    /// The broker's ceiling, when measured.
    public var ceiling: CeilingReport?
    /// The three services (and the broker when its pid is known).
    public var processes: [ProcessReport] = []
    /// CPU and context switches per event, per phase and process.
    public var costs: [PhaseCostReport]?
    /// The targets, met or missed.
    public var targets: [TargetCheck]?
    /// Seconds of idleness over which idle CPU was measured.
    public var idleSeconds: Double?
    /// Per second.
    public var timeline: [TimelinePoint] = []
    /// Phases on the timeline.
    public var spans: [PhaseSpan] = []
    /// Anything the reader should know (snapshots missing, generator saturated, ...).
    public var notes: [String] = []
    /// Seconds from start to end of the benchmark binary.
    public var totalSeconds: Double = 0

    /// Creates an empty report.
    public init(startedAt: String, machine: [String: String], settings: [String: String]) {
        self.startedAt = startedAt
        self.machine = machine
        self.settings = settings
    }

    /// Pretty, key-sorted JSON.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

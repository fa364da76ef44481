import Foundation
import Synchronization

/// One request as the load generator saw it.
struct Sample: Sendable {
    /// Monotonic nanoseconds when it was sent (closed loop) or meant to be sent (open loop).
    var start: UInt64
    /// Nanoseconds from `start` until the whole response had arrived.
    var latency: UInt64
    /// HTTP status, or 0 when the request got no response (see the transport error counts).
    var status: UInt16
}

/// What one connection's thread measured during a phase.
struct WorkerResult: Sendable {
    var samples: [Sample] = []
    var transportErrors: [String: Int] = [:]
    var connects = 0
    /// Open loop: the latest any request was sent after its intended time, in nanoseconds.
    var maxLateness: UInt64 = 0
    /// Open loop: requests sent more than a millisecond after their intended time (all connections were busy).
    var lateSends = 0
}

/// Counters the progress line reads while a phase runs.
final class LiveCounters: Sendable {
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
}

/// Everything measured in one load phase, all connections merged.
struct PhaseMeasurement: Sendable {
    var startNanos: UInt64
    var endNanos: UInt64
    var samples: [Sample]
    var transportErrors: [String: Int]
    var connects: Int
    var maxLateness: UInt64
    var lateSends: Int
}

/// The load generator: one thread per keep-alive connection, blocking sockets, a pre-built request whose email
/// digits are rewritten per request. Lean enough that the services, not the client, set the pace.
enum LoadGenerator {
    /// The email prefix of every user created by connection `worker` in phase `phase` of run `runID`; the order
    /// snapshots are matched back to phases by it.
    static func emailPrefix(runID: String, phase: Int, worker: Int) -> String {
        "b\(runID)-p\(pad(phase, 2))-w\(pad(worker, 4))-"
    }

    /// The phase index encoded in an email made by ``emailPrefix(runID:phase:worker:)``.
    static func phase(ofEmail email: String, runID: String) -> Int? {
        let prefix = "b\(runID)-p"
        guard email.hasPrefix(prefix) else { return nil }
        return Int(email.dropFirst(prefix.count).prefix(2))
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// Closed loop: `connections` connections each send the next request as soon as the previous answered,
    /// for `duration` seconds. Connection `n` goes to `ports[n % ports.count]`. Blocks until every connection has
    /// finished.
    static func closedLoop(
        ports: [Int], runID: String, phase: Int, connections: Int, duration: Double, counters: LiveCounters
    ) -> PhaseMeasurement {
        let start = monotonicNanos()
        let deadline = start + UInt64(duration * 1e9)
        let expected = Int(duration * 20_000 / Double(connections)) + 16
        return runWorkers(connections, start: start) { worker in
            var result = WorkerResult()
            result.samples.reserveCapacity(expected)
            let port = ports[worker % ports.count]
            var template = RequestTemplate(port: port, emailPrefix: emailPrefix(runID: runID, phase: phase, worker: worker))
            let connection = BlockingHTTPConnection(port: port)
            var sequence: UInt64 = 0
            while true {
                let sent = monotonicNanos()
                guard sent < deadline else { break }
                template.setSequence(sequence)
                sequence += 1
                let status = exchange(connection, template.bytes, into: &result, counters: counters)
                result.samples.append(Sample(start: sent, latency: monotonicNanos() - sent, status: status))
                if status == 0 { usleep(10_000) }  // a refused or broken connection: do not spin
            }
            result.connects = connection.connects
            return result
        }
    }

    /// Open loop: requests are due at a fixed `schedule`, whatever the answers do; any of `connections`
    /// connections sends the next due request when it is free. Latency counts from the intended send time, so a
    /// stalled server is charged for every request that waited behind it (no coordinated omission). Connection `n`
    /// goes to `ports[n % ports.count]`.
    static func openLoop(
        ports: [Int], runID: String, phase: Int, schedule: OpenLoopSchedule, connections: Int, counters: LiveCounters
    ) -> PhaseMeasurement {
        let start = monotonicNanos() + 5_000_000  // let the threads start before the first request is due
        let dispatcher = OpenLoopDispatcher()
        let total = schedule.count
        return runWorkers(connections, start: start) { worker in
            var result = WorkerResult()
            result.samples.reserveCapacity(total / max(1, connections) * 2 + 16)
            let port = ports[worker % ports.count]
            var template = RequestTemplate(port: port, emailPrefix: emailPrefix(runID: runID, phase: phase, worker: worker))
            let connection = BlockingHTTPConnection(port: port)
            var sequence: UInt64 = 0
            while true {
                let index = dispatcher.next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < total else { break }
                let intended = start + schedule.offsetNanos(index)
                sleepUntil(monotonicNanos: intended)
                let sent = monotonicNanos()
                let lateness = sent > intended ? sent - intended : 0
                result.maxLateness = max(result.maxLateness, lateness)
                if lateness > 1_000_000 { result.lateSends += 1 }
                template.setSequence(sequence)
                sequence += 1
                let status = exchange(connection, template.bytes, into: &result, counters: counters)
                result.samples.append(Sample(start: intended, latency: monotonicNanos() - intended, status: status))
            }
            result.connects = connection.connects
            return result
        }
    }

    private static func exchange(
        _ connection: BlockingHTTPConnection, _ request: [UInt8], into result: inout WorkerResult,
        counters: LiveCounters
    ) -> UInt16 {
        do {
            let status = try connection.exchange(request)
            counters.completed.wrappingAdd(1, ordering: .relaxed)
            if status != 201 { counters.failed.wrappingAdd(1, ordering: .relaxed) }
            return UInt16(clamping: status)
        } catch {
            result.transportErrors[error.key, default: 0] += 1
            counters.completed.wrappingAdd(1, ordering: .relaxed)
            counters.failed.wrappingAdd(1, ordering: .relaxed)
            return 0
        }
    }

    /// Runs `body` on `count` threads (one per connection) and merges what they return.
    private static func runWorkers(
        _ count: Int, start: UInt64, _ body: @escaping @Sendable (Int) -> WorkerResult
    ) -> PhaseMeasurement {
        let results = ResultCollector()
        let group = DispatchGroup()
        for worker in 0..<count {
            group.enter()
            let thread = Thread {
                let result = body(worker)
                results.add(result)
                group.leave()
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        group.wait()
        let end = monotonicNanos()
        let all = results.take()
        var merged = PhaseMeasurement(
            startNanos: start, endNanos: end, samples: [], transportErrors: [:], connects: 0, maxLateness: 0,
            lateSends: 0)
        merged.samples.reserveCapacity(all.reduce(0) { $0 + $1.samples.count })
        for result in all {
            merged.samples.append(contentsOf: result.samples)
            merged.transportErrors.merge(result.transportErrors, uniquingKeysWith: +)
            merged.connects += result.connects
            merged.maxLateness = max(merged.maxLateness, result.maxLateness)
            merged.lateSends += result.lateSends
        }
        merged.samples.sort { $0.start < $1.start }
        return merged
    }
}

/// Hands out open-loop request indexes to the connections' threads.
final class OpenLoopDispatcher: Sendable {
    let next = Atomic<Int>(0)
}

/// Worker results, gathered from the connections' threads.
private final class ResultCollector: Sendable {
    private let results = Mutex<[WorkerResult]>([])

    func add(_ result: WorkerResult) {
        results.withLock { $0.append(result) }
    }

    func take() -> [WorkerResult] {
        results.withLock { $0 }
    }
}

/// The fixed schedule of an open-loop phase: request *i* is due `i / rate` seconds after the start.
public struct OpenLoopSchedule: Sendable, Equatable {
    /// Requests per second.
    public let rate: Double
    /// Seconds.
    public let duration: Double

    /// Creates a schedule; `rate` and `duration` must be positive.
    public init(rate: Double, duration: Double) {
        precondition(rate > 0 && duration > 0, "an open-loop schedule needs a positive rate and duration")
        self.rate = rate
        self.duration = duration
    }

    /// How many requests the phase sends.
    public var count: Int { max(1, Int((rate * duration).rounded())) }

    /// When request `index` is due, in nanoseconds after the phase's start.
    public func offsetNanos(_ index: Int) -> UInt64 {
        UInt64((Double(index) * 1e9 / rate).rounded())
    }
}

import Foundation
import Synchronization

/// Prints a progress line every second while the services run, and samples each process's CPU for the chart.
final class Monitor: Sendable {
    struct Tick: Sendable {
        var second: Int
        var cpu: [String: Double]
        /// Context switches in this second, all threads, by process name.
        var switches: [String: Double]
    }

    private struct State {
        var label = "starting"
        var ticks: [Tick] = []
    }

    private let processes: [(name: String, pid: Int32)]
    private let snapshots: SnapshotSource
    private let runID: String
    private let anchor: ClockAnchor
    private let counters: LiveCounters
    private let state = Mutex(State())
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    init(
        processes: [(name: String, pid: Int32)], snapshots: SnapshotSource, runID: String, anchor: ClockAnchor,
        counters: LiveCounters
    ) {
        self.processes = processes
        self.snapshots = snapshots
        self.runID = runID
        self.anchor = anchor
        self.counters = counters
    }

    /// What the progress line calls the current phase.
    func setLabel(_ label: String) {
        state.withLock { $0.label = label }
    }

    func start() {
        let thread = Thread { [self] in
            loop()
            stopped.signal()
        }
        thread.start()
    }

    /// Stops the thread and returns the CPU samples, one per second.
    func stop() -> [Tick] {
        stopping.store(true, ordering: .relaxed)
        stopped.wait()
        return state.withLock { $0.ticks }
    }

    private func loop() {
        let reader = SnapshotReader(snapshots, runID: runID)
        var last = processes.map { ThreadTotals.read(pid: $0.pid) }
        var lastCompleted = 0
        var lastFailed = 0
        var lastSnapshots = 0
        var second = 0
        while !stopping.load(ordering: .relaxed) {
            second += 1
            sleepUntil(monotonicNanos: anchor.monotonic + UInt64(second) * 1_000_000_000)
            let now = processes.map { ThreadTotals.read(pid: $0.pid) }
            var usage: [String: Double] = [:]
            var switches: [String: Double] = [:]
            for (index, process) in processes.enumerated() {
                guard let current = now[index], let previous = last[index] else { continue }
                usage[process.name] = max(0, (current.cpuSeconds - previous.cpuSeconds) * 100)
                switches[process.name] = Double(max(0, current.contextSwitches - previous.contextSwitches))
            }
            last = now
            let snapshots = reader.count()
            let completed = counters.completed.load(ordering: .relaxed)
            let failed = counters.failed.load(ordering: .relaxed)
            let label = state.withLock { state in
                state.ticks.append(Tick(second: second - 1, cpu: usage, switches: switches))
                return state.label
            }
            let cpuText = processes.map { "\(short($0.name)) \(Int(usage[$0.name] ?? 0))%" }.joined(separator: " ")
            var line = "[\(pad(second, 4))s] \(label.padding(toLength: 14, withPad: " ", startingAt: 0))"
            line += " \(pad(completed - lastCompleted, 6)) req/s  err \(failed - lastFailed)"
            if let snapshots {
                line += "  | snapshots \(snapshots) (+\(snapshots - lastSnapshots)/s)"
                lastSnapshots = snapshots
            }
            line += "  | cpu \(cpuText)"
            BenchmarkRunner.say(line)
            lastCompleted = completed
            lastFailed = failed
        }
    }

    private func short(_ name: String) -> String { TableRenderer.short(name) }

    private func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

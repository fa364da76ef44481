import Foundation
import Storage
import Synchronization

/// Prints a progress line every second while the services run, and samples each process's CPU for the chart.
final class Monitor: Sendable {
    struct Tick: Sendable {
        var second: Int
        var cpu: [String: Double]
    }

    private struct State {
        var label = "starting"
        var ticks: [Tick] = []
    }

    private let processes: [(name: String, pid: Int32)]
    private let ordersDatabase: String
    private let anchor: ClockAnchor
    private let counters: LiveCounters
    private let state = Mutex(State())
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    init(processes: [(name: String, pid: Int32)], ordersDatabase: String, anchor: ClockAnchor, counters: LiveCounters) {
        self.processes = processes
        self.ordersDatabase = ordersDatabase
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
        var options = SQLiteConnection.Options()
        options.readOnly = true
        var database: SQLiteConnection?
        var lastCPU = processes.map { ProcessStats.read(pid: $0.pid)?.cpuSeconds ?? 0 }
        var lastCompleted = 0
        var lastFailed = 0
        var lastSnapshots = 0
        var second = 0
        while !stopping.load(ordering: .relaxed) {
            second += 1
            sleepUntil(monotonicNanos: anchor.monotonic + UInt64(second) * 1_000_000_000)
            let cpu = processes.map { ProcessStats.read(pid: $0.pid)?.cpuSeconds ?? 0 }
            var usage: [String: Double] = [:]
            for (index, process) in processes.enumerated() {
                usage[process.name] = max(0, (cpu[index] - lastCPU[index]) * 100)
            }
            lastCPU = cpu
            if database == nil, FileManager.default.fileExists(atPath: ordersDatabase) {
                database = try? SQLiteConnection(path: ordersDatabase, options: options)
            }
            let snapshots = (try? database?.queryFirst("SELECT count(*) AS n FROM user_snapshots")?.int("n")) ?? nil
            let completed = counters.completed.load(ordering: .relaxed)
            let failed = counters.failed.load(ordering: .relaxed)
            let label = state.withLock { state in
                state.ticks.append(Tick(second: second - 1, cpu: usage))
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
        database?.close()
    }

    private func short(_ name: String) -> String {
        switch name {
        case "user-service": "user"
        case "notification-service": "notif"
        case "order-service": "order"
        default: name
        }
    }

    private func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

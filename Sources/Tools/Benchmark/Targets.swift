import Foundation

/// Per-phase cost from two samples of every tracked process.
enum PhaseCosts {
    /// Names that are not services: they show in the table but are not in the sums.
    static let notServices: Set<String> = ["rabbitmq", "bench"]

    /// What each process spent between `before` and `after` (same order as `names`), divided by `events`.
    static func compute(
        phase: String, seconds: Double, events: Int, names: [String], before: [ThreadTotals?], after: [ThreadTotals?]
    ) -> PhaseCostReport {
        var processes: [ProcessCost] = []
        var cpu = 0.0
        var switches = 0
        for (index, name) in names.enumerated() {
            guard index < before.count, index < after.count, let start = before[index], let end = after[index] else {
                continue
            }
            // A thread that exits takes its counts with it, so a total can shrink: never below zero.
            let spent = max(0, end.cpuSeconds - start.cpuSeconds)
            let switched = max(0, end.contextSwitches - start.contextSwitches)
            processes.append(
                ProcessCost(
                    name: name, cpuSeconds: spent, contextSwitches: switched,
                    cpuMsPerEvent: events > 0 ? spent * 1000 / Double(events) : nil,
                    switchesPerEvent: events > 0 ? Double(switched) / Double(events) : nil))
            if !notServices.contains(name) {
                cpu += spent
                switches += switched
            }
        }
        return PhaseCostReport(
            phase: phase, seconds: seconds, events: events, processes: processes,
            cpuMsPerEvent: events > 0 ? cpu * 1000 / Double(events) : nil,
            switchesPerEvent: events > 0 ? Double(switches) / Double(events) : nil,
            cpuPercent: seconds > 0 ? cpu / seconds * 100 : 0)
    }
}

/// The targets of the issue "Half of the broker's real ceiling", checked against one report.
public enum Targets {
    /// Each target with this run's value (nil where the run did not measure it).
    public static func evaluate(_ report: BenchmarkReport) -> [TargetCheck] {
        let costs = report.costs ?? []
        func cost(_ phase: String) -> PhaseCostReport? { costs.first { $0.phase == phase } }
        func phase(_ name: String) -> LoadPhaseReport? { report.phases.first { $0.name == name } }
        func endToEnd(_ scope: String) -> EndToEndReport? { report.endToEnd.first { $0.scope == scope } }
        let widest = report.phases.filter { $0.kind == "closed" }.max { $0.connections < $1.connections }
        let single = report.phases.first { $0.kind == "closed" && $0.connections == 1 }
        let open = report.phases.first { $0.kind == "open" }

        var checks: [TargetCheck] = []
        func add(_ name: String, _ comparison: String, _ limit: Double, _ unit: String, _ measured: Double?) {
            let met = measured.map { comparison == "<=" ? $0 <= limit : $0 >= limit }
            checks.append(
                TargetCheck(name: name, limit: limit, comparison: comparison, unit: unit, measured: measured, met: met))
        }
        let wideName = widest?.name ?? "closed-64"
        let singleName = single?.name ?? "closed-1"
        add("end to end, best closed phase / broker ceiling", ">=", 0.5, "fraction", report.ceiling?.bestPhaseFraction)
        if let whole = endToEnd("whole run") {
            add("snapshots missing (nothing lost)", "<=", 0, "events", Double(max(0, whole.created - whole.events)))
        } else {
            add("snapshots missing (nothing lost)", "<=", 0, "events", nil)
        }
        add("CPU per event, services summed, \(wideName)", "<=", 0.25, "ms", cost(wideName)?.cpuMsPerEvent)
        add("CPU per event, services summed, \(singleName)", "<=", 0.4, "ms", cost(singleName)?.cpuMsPerEvent)
        add("context switches per event, services summed, \(singleName)", "<=", 8, "switches",
            cost(singleName)?.switchesPerEvent)
        add("POST p50, \(singleName)", "<=", 0.5, "ms", phase(singleName)?.latency.p50)
        add("POST p99, open loop", "<=", 5, "ms", open?.latency.p99)
        add("end-to-end lag p99, open loop", "<=", 20, "ms", open.flatMap { endToEnd($0.name) }?.lag.p99)
        let services = report.processes.filter { !PhaseCosts.notServices.contains($0.name) }
        for process in services {
            add("peak RSS, \(process.name)", "<=", 64, "MiB", process.peakRSSMiB)
        }
        // `/proc` counts CPU in clock ticks (10 ms): "no CPU when idle" allows at most one tick per service.
        if let idle = cost("idle") {
            let seconds = idle.processes.filter { !PhaseCosts.notServices.contains($0.name) }.map(\.cpuSeconds)
            // Whole milliseconds: 0.01 s read from ticks is 10.000000000000002 ms in binary floating point.
            add(
                "idle CPU, busiest service (one 10 ms tick allowed)", "<=", 10, "ms",
                seconds.max().map { ($0 * 1000).rounded() })
        } else {
            add("idle CPU, busiest service (one 10 ms tick allowed)", "<=", 10, "ms", nil)
        }
        return checks
    }
}

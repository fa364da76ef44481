@testable import Benchmark
import Foundation
import Testing

struct ThreadTotalsTests {
    @Test func statusGivesVoluntaryPlusInvoluntarySwitches() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t  7\n"
        #expect(ThreadTotals.contextSwitches(status: status) == 127)
        #expect(ThreadTotals.contextSwitches(status: "Name:\tx\n") == nil)
    }

    /// The process-wide `/proc/<pid>/status` counts only the main thread: switches on other threads must count.
    /// (Only live threads have a `task` entry, so the two threads stay until the second reading.)
    @Test func switchesOfEveryThreadCount() throws {
        let before = try #require(ThreadTotals.read(pid: getpid()))
        let ping = DispatchSemaphore(value: 0)
        let pong = DispatchSemaphore(value: 0)
        let rounds = 300
        let done = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        defer {
            release.signal()
            release.signal()
        }
        Thread {
            for _ in 0..<rounds {
                ping.wait()
                pong.signal()
            }
            done.signal()
            release.wait()
        }.start()
        Thread {
            for _ in 0..<rounds {
                ping.signal()
                pong.wait()
            }
            done.signal()
            release.wait()
        }.start()
        done.wait()
        done.wait()
        let after = try #require(ThreadTotals.read(pid: getpid()))
        // Each round blocks each of the two threads at least once, except when the other was already there.
        #expect(after.contextSwitches - before.contextSwitches >= rounds)
        #expect(after.cpuSeconds >= before.cpuSeconds)
        #expect(ThreadTotals.read(pid: -1) == nil)
    }
}

struct PhaseCostTests {
    let names = ["user-service", "notification-service", "order-service", "rabbitmq", "bench"]

    func totals(_ cpu: Double, _ switches: Int) -> ThreadTotals {
        ThreadTotals(cpuSeconds: cpu, contextSwitches: switches)
    }

    @Test func servicesAreSummedPerEventWithoutTheBrokerOrTheGenerator() throws {
        let before = [totals(1, 100), totals(2, 200), totals(3, 300), totals(10, 1_000), totals(5, 50)]
        let after = [totals(1.5, 600), totals(2.1, 400), totals(3.2, 700), totals(20, 9_000), totals(9, 90)]
        let cost = PhaseCosts.compute(
            phase: "closed-1", seconds: 2, events: 1_000, names: names, before: before, after: after)
        #expect(cost.events == 1_000)
        #expect(abs(try #require(cost.cpuMsPerEvent) - 0.8) < 1e-9)
        #expect(abs(try #require(cost.switchesPerEvent) - 1.1) < 1e-9)
        #expect(abs(cost.cpuPercent - 40) < 1e-9)
        let user = try #require(cost.processes.first { $0.name == "user-service" })
        #expect(user.contextSwitches == 500)
        #expect(abs(try #require(user.cpuMsPerEvent) - 0.5) < 1e-9)
        let broker = try #require(cost.processes.first { $0.name == "rabbitmq" })
        #expect(abs(try #require(broker.cpuMsPerEvent) - 10) < 1e-9)
    }

    @Test func noEventsGivesTotalsButNoPerEventFigures() {
        let cost = PhaseCosts.compute(
            phase: "idle", seconds: 5, events: 0, names: ["user-service"], before: [totals(1, 10)],
            after: [totals(1.01, 12)])
        #expect(cost.cpuMsPerEvent == nil)
        #expect(cost.switchesPerEvent == nil)
        #expect(cost.processes.first?.contextSwitches == 2)
    }

    @Test func aProcessThatVanishedOrShrankCountsNothingNegative() {
        // A thread that exits takes its counts with it; a process that is gone has no sample.
        let cost = PhaseCosts.compute(
            phase: "closed-16", seconds: 1, events: 10, names: ["user-service", "order-service"],
            before: [totals(2, 100), totals(1, 1)], after: [totals(1.5, 90), nil])
        #expect(cost.processes.map(\.name) == ["user-service"])
        #expect(cost.cpuMsPerEvent == 0)
        #expect(cost.switchesPerEvent == 0)
    }
}

struct TargetTests {
    func report(cpuWide: Double, cpuSingle: Double, switches: Double, p50: Double) -> BenchmarkReport {
        var report = BenchmarkReport(startedAt: "t", machine: [:], settings: [:])
        func phase(_ name: String, _ kind: String, _ connections: Int, p50: Double, p99: Double) -> LoadPhaseReport {
            LoadPhaseReport(
                name: name, kind: kind, connections: connections, seconds: 10, requests: 100, created: 100,
                requestsPerSecond: 10,
                latency: LatencySummary(microseconds: [UInt64(p50 * 1000), UInt64(p99 * 1000)]), errors: [:],
                connects: connections)
        }
        report.phases = [
            phase("closed-1", "closed", 1, p50: p50, p99: p50), phase("closed-64", "closed", 64, p50: 3, p99: 3),
            phase("open", "open", 128, p50: 1, p99: 7),
        ]
        func cost(_ name: String, cpu: Double?, switches: Double?) -> PhaseCostReport {
            PhaseCostReport(
                phase: name, seconds: 10, events: 100, processes: [], cpuMsPerEvent: cpu, switchesPerEvent: switches,
                cpuPercent: 1)
        }
        report.costs = [
            cost("closed-1", cpu: cpuSingle, switches: switches), cost("closed-64", cpu: cpuWide, switches: 2),
            PhaseCostReport(
                phase: "idle", seconds: 5, events: 0,
                processes: [
                    ProcessCost(name: "user-service", cpuSeconds: 0.02, contextSwitches: 9),
                    ProcessCost(name: "rabbitmq", cpuSeconds: 1, contextSwitches: 900),
                ], cpuPercent: 0.4),
        ]
        report.processes = [
            ProcessReport(name: "user-service", peakRSSMiB: 70, cpuSeconds: 1),
            ProcessReport(name: "order-service", peakRSSMiB: 30, cpuSeconds: 1),
            ProcessReport(name: "rabbitmq", peakRSSMiB: 300, cpuSeconds: 1),
        ]
        return report
    }

    func check(_ checks: [TargetCheck], _ prefix: String) throws -> TargetCheck {
        try #require(checks.first { $0.name.hasPrefix(prefix) })
    }

    @Test func eachTargetIsMetOrMissedByItsOwnBound() throws {
        let checks = Targets.evaluate(report(cpuWide: 0.25, cpuSingle: 0.41, switches: 8, p50: 0.6))
        #expect(try check(checks, "CPU per event, services summed, closed-64").met == true)
        #expect(try check(checks, "CPU per event, services summed, closed-1").met == false)
        #expect(try check(checks, "context switches per event, services summed, closed-1").met == true)
        #expect(try check(checks, "POST p50, closed-1").met == false)
        #expect(try check(checks, "POST p99, open loop").met == false)
        #expect(try check(checks, "peak RSS, user-service").met == false)
        #expect(try check(checks, "peak RSS, order-service").met == true)
        // The broker's memory and idle CPU are not the services'.
        #expect(!checks.contains { $0.name.contains("rabbitmq") })
        let idle = try check(checks, "idle CPU")
        #expect(idle.met == false)
        #expect(abs(try #require(idle.measured) - 20) < 1e-9)
    }

    @Test func oneTickOfIdleCPUIsMet() throws {
        var report = report(cpuWide: 0.25, cpuSingle: 0.41, switches: 8, p50: 0.6)
        report.costs = report.costs?.map { cost in
            guard cost.phase == "idle" else { return cost }
            var idle = cost
            idle.processes = [ProcessCost(name: "user-service", cpuSeconds: 0.01, contextSwitches: 3)]
            return idle
        }
        let idle = try check(Targets.evaluate(report), "idle CPU")
        #expect(idle.met == true, "one 10 ms tick, measured \(idle.measured.map { "\($0)" } ?? "nil") ms")
    }

    @Test func whatTheRunDidNotMeasureIsNeitherMetNorMissed() throws {
        let checks = Targets.evaluate(report(cpuWide: 0.1, cpuSingle: 0.1, switches: 1, p50: 0.2))
        let ceiling = try check(checks, "end to end, best closed phase / broker ceiling")
        #expect(ceiling.measured == nil)
        #expect(ceiling.met == nil)
        #expect(try check(checks, "end-to-end lag p99, open loop").met == nil)
    }

    @Test func theCeilingRatioMustReachHalf() throws {
        var report = report(cpuWide: 0.1, cpuSingle: 0.1, switches: 1, p50: 0.2)
        report.ceiling = CeilingReport(
            messages: 10, bodyBytes: 200, prefetch: 256, batchSize: 10, seconds: 1, messagesPerSecond: 10,
            publishPerSecond: 10, bestPhaseFraction: 0.49)
        #expect(try check(Targets.evaluate(report), "end to end").met == false)
        report.ceiling?.bestPhaseFraction = 0.5
        #expect(try check(Targets.evaluate(report), "end to end").met == true)
    }
}

struct ComparisonTests {
    func run(p50: Double, ceiling: Double, cpu: Double?) -> BenchmarkReport {
        var report = TargetTests().report(cpuWide: 0.3, cpuSingle: cpu ?? 0, switches: 10, p50: p50)
        if cpu == nil { report.costs = nil }
        report.ceiling = CeilingReport(
            messages: 10, bodyBytes: 200, prefetch: 256, batchSize: 10, seconds: 1, messagesPerSecond: ceiling,
            publishPerSecond: 10, client: cpu == nil ? nil : "rabbitmq-c")
        return report
    }

    @Test func eachFigureStandsBesideTheEarlierOneWithTheChange() throws {
        let earlier = run(p50: 1.28, ceiling: 8_000, cpu: nil)
        let current = run(p50: 0.64, ceiling: 16_000, cpu: 0.4)
        let text = Comparison.render(earlier: earlier, current: current)
        let lines = text.split(separator: "\n").map(String.init)
        let p50 = try #require(lines.first { $0.hasPrefix("closed-1 POST p50 ms") })
        #expect(p50.contains("1.28") && p50.contains("0.64") && p50.contains("-50.0 %"))
        // A figure the earlier run did not have is new; one only it had is shown as not measured.
        let cpu = try #require(lines.first { $0.hasPrefix("closed-1 CPU ms/event (services)") })
        #expect(cpu.hasSuffix("new"))
        let oldCeiling = try #require(lines.first { $0.hasPrefix("ceiling msg/s (Messaging, one at a time)") })
        #expect(oldCeiling.contains("8000") && oldCeiling.hasSuffix("not measured"))
        let newCeiling = try #require(lines.first { $0.hasPrefix("ceiling msg/s (rabbitmq-c)") })
        #expect(newCeiling.contains("16000"))
    }

    @Test func changesAreRelativeAndZeroIsHandled() {
        #expect(Comparison.change(from: 100, to: 125) == "+25.0 %")
        #expect(Comparison.change(from: 2, to: 1.5) == "-25.0 %")
        #expect(Comparison.change(from: 3, to: 3) == "0 %")
        #expect(Comparison.change(from: 0, to: 0.02) == "+0.02")
        #expect(Comparison.change(from: nil, to: 1) == "new")
    }

    @Test func aReportFromBeforeTheseFiguresStillDecodes() throws {
        let old = """
            {"startedAt":"2026-11-20T10:00:00Z","machine":{},"settings":{},"phases":[],"endToEnd":[],
             "ceiling":{"messages":30000,"bodyBytes":250,"prefetch":256,"batchSize":1000,"seconds":3.7,
                        "messagesPerSecond":8100,"publishPerSecond":20000,"systemFraction":0.16},
             "processes":[],"timeline":[{"second":0,"requests":1,"errors":0,"snapshots":0,"cpu":{}}],"spans":[],
             "notes":[],"totalSeconds":100}
            """
        let report = try JSONDecoder().decode(BenchmarkReport.self, from: Data(old.utf8))
        #expect(report.ceiling?.client == nil)
        #expect(report.costs == nil)
        #expect(Comparison.figures(report).contains { $0.name == "ceiling msg/s (Messaging, one at a time)" })
    }
}

struct SnapshotReaderTests {
    @Test func psqlOutputBecomesRowsWithNullsAsNil() {
        let output = "bx-p01-w0002-1@b.example\t2026-11-24T10:00:00.123Z\t2026-11-24T10:00:00.140Z\n"
            + "bx-p01-w0002-2@b.example\t\t2026-11-24T10:00:01.000Z\n\nbroken line\n"
        let rows = SnapshotReader.parseRows(output)
        #expect(rows.count == 2)
        #expect(rows[0].email == "bx-p01-w0002-1@b.example")
        #expect(rows[0].occurredAt == "2026-11-24T10:00:00.123Z")
        #expect(rows[1].occurredAt == nil)
        #expect(rows[1].updatedAt == "2026-11-24T10:00:01.000Z")
    }
}

import Foundation
public import Messaging
import SQLiteStorage

/// Which parts of the benchmark run.
public enum BenchmarkPhase: String, Sendable, CaseIterable {
    /// Closed loop at each concurrency level.
    case closed
    /// Open loop at a fixed rate.
    case open
    /// The broker's two-queue ceiling.
    case ceiling
}

/// Everything a run can be told; defaults finish in about two minutes on two cores.
public struct BenchmarkOptions: Sendable {
    /// The broker the services and the ceiling use.
    public var brokerURL: String
    /// Where `user-service`, `notification-service` and `order-service` are (release builds).
    public var binDirectory: String
    /// Results go into a new timestamped folder here.
    public var outputDirectory = "bench-results"
    /// The parts to run.
    public var phases: Set<BenchmarkPhase> = Set(BenchmarkPhase.allCases)
    /// Seconds of closed-loop warm-up (16 connections) before the measured phases; 0 for none.
    public var warmup = 2.0
    /// Seconds per closed-loop concurrency level.
    public var closedDuration = 10.0
    /// Closed-loop concurrency levels (keep-alive connections).
    public var concurrency = [1, 16, 64]
    /// Seconds of open loop.
    public var openDuration = 15.0
    /// Open-loop requests per second; nil: half the best closed-loop rate.
    public var openRate: Double?
    /// Connections the open loop may use at most.
    public var openConnections = 128
    /// Messages for the broker ceiling.
    public var ceilingMessages = 30_000
    /// Prefetch of the ceiling's consumers (the services' default).
    public var ceilingPrefetch: UInt16 = 256
    /// Messages per confirmed publish to queue A (the outbox relay's batch size).
    public var ceilingBatch = 1_000
    /// Body size of the ceiling's messages, in bytes (about an event's).
    public var ceilingBodyBytes = 200
    /// The type of every queue: passed to the services as `AMQP_QUEUE_TYPE` and used by the ceiling.
    public var queueType: QueueType = .classic
    /// Instances of each service; more than one needs PostgreSQL databases (a SQLite file has one writer process).
    public var instances = 1
    /// The user service's `USER_DB_URL` (`postgres://...`); nil: a fresh SQLite file.
    public var userDatabaseURL: String?
    /// The order service's `ORDER_DB_URL` (`postgres://...`), read back with `psql`; nil: a fresh SQLite file.
    public var orderDatabaseURL: String?
    /// Seconds of idleness at the end over which idle CPU is measured.
    public var idleSeconds = 5.0
    /// Most seconds to wait for the snapshots to catch up with the 201s.
    public var drainTimeout = 60.0
    /// `LOG_LEVEL` for the services.
    public var logLevel = "info"
    /// The broker's pid, to report its CPU and memory too.
    public var brokerPID: Int32?
    /// Keep the databases and logs' data folder after the run.
    public var keepData = false

    /// Creates options with the defaults.
    public init(brokerURL: String, binDirectory: String) {
        self.brokerURL = brokerURL
        self.binDirectory = binDirectory
    }
}

/// A failed run.
public struct BenchmarkError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    init(_ description: String) { self.description = description }
}

/// Runs the benchmark and writes its results.
public enum BenchmarkRunner {
    /// What a finished run wrote.
    public struct Output: Sendable {
        /// The figures.
        public var report: BenchmarkReport
        /// The printed table.
        public var table: String
        /// The folder with `report.json`, `chart.svg`, `table.txt` and the services' logs.
        public var directory: String
    }

    /// Runs the phases in `options`, printing progress, and writes the results.
    public static func run(_ options: BenchmarkOptions) async throws -> Output {
        let began = monotonicNanos()
        let stamp = Self.stamp()
        let directory = "\(options.outputDirectory)/\(stamp)"
        let dataDirectory = "\(directory)/data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        var report = BenchmarkReport(
            startedAt: ISO8601DateFormatter().string(from: Date()), machine: machine(),
            settings: settings(options))
        say("results: \(directory)")

        if options.phases.contains(.closed) || options.phases.contains(.open) {
            try await runSystem(options, dataDirectory: dataDirectory, logDirectory: directory, into: &report)
        }
        if options.phases.contains(.ceiling) {
            let settings = BrokerCeiling.Settings(
                url: options.brokerURL, queueType: options.queueType, messages: options.ceilingMessages,
                bodyBytes: options.ceilingBodyBytes, prefetch: options.ceilingPrefetch, batchSize: options.ceilingBatch)
            say("broker ceiling, rabbitmq-c: \(options.ceilingMessages) messages A -> B...")
            let raw = try await BrokerCeiling.runRabbitMQC(settings)
            var ceiling = CeilingReport(
                messages: raw.messages, bodyBytes: options.ceilingBodyBytes, prefetch: Int(options.ceilingPrefetch),
                batchSize: options.ceilingBatch, seconds: raw.seconds,
                messagesPerSecond: Double(raw.messages) / raw.seconds,
                publishPerSecond: Double(raw.messages) / raw.publishSeconds, client: "rabbitmq-c",
                queueType: options.queueType.rawValue)
            say("  ceiling, rabbitmq-c: \(Int(ceiling.messagesPerSecond)) msg/s end to end")
            say("broker ceiling, Messaging module in the same shape: \(options.ceilingMessages) messages A -> B...")
            do {
                let ours = try await BrokerCeiling.runMessaging(settings) { drained in
                    say("  ceiling, Messaging: \(drained) of \(options.ceilingMessages) through B")
                }
                ceiling.messagingSeconds = ours.seconds
                ceiling.messagingMessagesPerSecond = Double(ours.messages) / ours.seconds
                ceiling.messagingFraction = ceiling.messagingMessagesPerSecond.map { $0 / ceiling.messagesPerSecond }
                say("  ceiling, Messaging: \(Int(ceiling.messagingMessagesPerSecond ?? 0)) msg/s end to end")
            } catch {
                report.notes.append("the Messaging module's ceiling failed: \(error)")
            }
            if let whole = report.endToEnd.first, whole.eventsPerSecond > 0 {
                ceiling.systemFraction = whole.eventsPerSecond / ceiling.messagesPerSecond
            }
            if let best = report.endToEnd.dropFirst().filter({ $0.scope != "warmup" }).map(\.eventsPerSecond).max() {
                ceiling.bestPhaseFraction = best / ceiling.messagesPerSecond
            }
            report.ceiling = ceiling
        }
        report.targets = Targets.evaluate(report)
        if !options.keepData { try? FileManager.default.removeItem(atPath: dataDirectory) }
        report.totalSeconds = Double(monotonicNanos() - began) / 1e9

        let table = TableRenderer.render(report)
        try report.json().write(to: URL(fileURLWithPath: "\(directory)/report.json"))
        try SVGChart.render(report).write(toFile: "\(directory)/chart.svg", atomically: true, encoding: .utf8)
        try table.write(toFile: "\(directory)/table.txt", atomically: true, encoding: .utf8)
        return Output(report: report, table: table, directory: directory)
    }

    // MARK: - The system under load

    private static func runSystem(
        _ options: BenchmarkOptions, dataDirectory: String, logDirectory: String, into report: inout BenchmarkReport
    ) async throws {
        let ordersDatabase = options.orderDatabaseURL ?? "\(dataDirectory)/orders.sqlite"
        let snapshotSource: SnapshotSource =
            options.orderDatabaseURL.map { .postgres(url: $0) } ?? .sqlite(path: ordersDatabase)
        let brokers = options.brokerURL.split(separator: ",").map(String.init)
        var services: [ServiceProcess] = []
        for instance in 1...max(1, options.instances) {
            // Instance n lists the broker's nodes starting at node n, as `make run-cluster` does.
            let rotated = (0..<brokers.count).map { brokers[($0 + instance - 1) % brokers.count] }
            let common = [
                "RABBITMQ_URL": rotated.joined(separator: ","), "LOG_LEVEL": options.logLevel,
                "AMQP_QUEUE_TYPE": options.queueType.rawValue,
            ]
            func process(_ name: String, _ environment: [String: String]) -> ServiceProcess {
                ServiceProcess(
                    name: name, instance: instance, binDirectory: options.binDirectory, port: freePort(),
                    environment: common.merging(environment) { $1 }, logDirectory: logDirectory)
            }
            services.append(process("user-service", ["USER_DB_URL": options.userDatabaseURL ?? "\(dataDirectory)/users.sqlite"]))
            services.append(process("notification-service", [:]))
            services.append(process("order-service", ["ORDER_DB_URL": ordersDatabase]))
        }
        say("starting the services (release builds in \(options.binDirectory))...")
        do {
            // Consumers first, so the user service's first events find them.
            for service in services.reversed() { try service.start() }
            for service in services { try await waitUntilReady(service) }
        } catch {
            for service in services { await service.stop() }
            throw error
        }

        let userPorts = services.filter { $0.name.hasPrefix("user-service") }.map(\.port)
        var tracked = services.map { (name: $0.name, pid: $0.pid) }
        if let broker = options.brokerPID { tracked.append((name: "rabbitmq", pid: broker)) }
        // The load generator itself, to show it is not the bottleneck.
        tracked.append((name: "bench", pid: getpid()))
        let startStats = tracked.map { ProcessStats.read(pid: $0.pid) }
        let counters = LiveCounters()
        let anchor = ClockAnchor()
        let runID = String(format: "%06x", UInt32.random(in: 0..<0xFF_FFFF))
        let monitor = Monitor(processes: tracked, snapshots: snapshotSource, runID: runID, anchor: anchor, counters: counters)
        monitor.start()
        var costs: [PhaseCostReport] = []
        var createdSoFar = 0
        /// Samples every process, runs `load` (which returns the users it created), waits until the order service
        /// has committed a snapshot for each, and samples again: the phase's cost per event includes the
        /// asynchronous work its events caused.
        func costed(_ name: String, _ load: () async throws -> Int) async throws {
            let before = tracked.map { ThreadTotals.read(pid: $0.pid) }
            let start = monotonicNanos()
            let events = try await load()
            createdSoFar += events
            monitor.setLabel("\(name) drain")
            do {
                try await waitForSnapshots(count: createdSoFar, snapshotSource, runID: runID, options)
            } catch {
                report.notes.append("\(name): \(error)")
            }
            let after = tracked.map { ThreadTotals.read(pid: $0.pid) }
            costs.append(
                PhaseCosts.compute(
                    phase: name, seconds: Double(monotonicNanos() - start) / 1e9, events: events,
                    names: tracked.map(\.name), before: before, after: after))
        }

        var measured: [(report: LoadPhaseReport, measurement: PhaseMeasurement, index: Int)] = []
        var phaseIndex = 0
        func closed(_ name: String, kind: String, connections: Int, duration: Double) async throws {
            monitor.setLabel(name)
            let index = phaseIndex
            phaseIndex += 1
            var measurement: PhaseMeasurement?
            try await costed(name) {
                let taken = await onThread {
                    LoadGenerator.closedLoop(
                        ports: userPorts, runID: runID, phase: index, connections: connections, duration: duration,
                        counters: counters)
                }
                measurement = taken
                return created([taken])
            }
            guard let measurement else { return }
            let phase = phaseReport(name: name, kind: kind, connections: connections, rate: nil, measurement)
            measured.append((phase, measurement, index))
            say("  \(name): \(Int(phase.requestsPerSecond)) req/s, p50 \(TableRenderer.fixed(phase.latency.p50, 2)) ms, "
                + "p99 \(TableRenderer.fixed(phase.latency.p99, 2)) ms, errors \(TableRenderer.errors(phase.errors))")
        }
        var spans: [PhaseSpan] = []
        func span(_ name: String, _ start: UInt64) {
            spans.append(PhaseSpan(name: name, start: anchor.seconds(atMonotonic: start),
                end: anchor.seconds(atMonotonic: monotonicNanos())))
        }

        do {
            if options.phases.contains(.closed) {
                if options.warmup > 0 {
                    let start = monotonicNanos()
                    try await closed("warmup", kind: "warmup", connections: 16, duration: options.warmup)
                    span("warm-up", start)
                }
                for connections in options.concurrency {
                    let start = monotonicNanos()
                    try await closed("closed-\(connections)", kind: "closed", connections: connections,
                        duration: options.closedDuration)
                    span("closed \(connections)", start)
                }
            }
            if options.phases.contains(.open) {
                let start = monotonicNanos()
                monitor.setLabel("drain")
                try await waitForSnapshots(count: created(measured.map(\.measurement)), snapshotSource, runID: runID, options)
                if monotonicNanos() - start > 1_000_000_000 { span("drain", start) }
                let best = measured.filter { $0.report.kind == "closed" }.map { Double($0.report.created) / $0.report.seconds }.max()
                let rate = options.openRate ?? max(1, (best ?? 200) / 2)
                let schedule = OpenLoopSchedule(rate: rate, duration: options.openDuration)
                let name = "open"
                monitor.setLabel("open @\(Int(rate))/s")
                say("open loop: \(schedule.count) requests at \(Int(rate))/s over \(Int(options.openDuration)) s, "
                    + "up to \(options.openConnections) connections...")
                let index = phaseIndex
                phaseIndex += 1
                let openStart = monotonicNanos()
                var taken: PhaseMeasurement?
                try await costed(name) {
                    let measurement = await onThread {
                        LoadGenerator.openLoop(
                            ports: userPorts, runID: runID, phase: index, schedule: schedule,
                            connections: options.openConnections, counters: counters)
                    }
                    taken = measurement
                    return created([measurement])
                }
                span("open loop", openStart)
                guard let measurement = taken else { throw BenchmarkError("the open loop measured nothing") }
                var phase = phaseReport(
                    name: name, kind: "open", connections: options.openConnections, rate: rate, measurement)
                phase.lateSends = measurement.lateSends
                phase.maxLatenessMs = Double(measurement.maxLateness) / 1e6
                measured.append((phase, measurement, index))
                say("  open: \(Int(phase.requestsPerSecond)) req/s, p50 \(TableRenderer.fixed(phase.latency.p50, 2)) ms, "
                    + "p99 \(TableRenderer.fixed(phase.latency.p99, 2)) ms, errors \(TableRenderer.errors(phase.errors))")
                if measurement.lateSends > 0 {
                    report.notes.append(
                        "open loop: \(measurement.lateSends) requests were sent over 1 ms late (at most "
                            + "\(TableRenderer.fixed(Double(measurement.maxLateness) / 1e6, 1)) ms): all "
                            + "\(options.openConnections) connections busy, or the generator's threads not scheduled "
                            + "in time; the delay counts in their latency")
                }
            }
            let drainStart = monotonicNanos()
            monitor.setLabel("drain")
            let total = created(measured.map(\.measurement))
            do {
                try await waitForSnapshots(count: total, snapshotSource, runID: runID, options)
            } catch {
                report.notes.append("\(error)")
            }
            span("drain", drainStart)

            monitor.setLabel("idle")
            let idleStart = monotonicNanos()
            let beforeIdle = tracked.map { ProcessStats.read(pid: $0.pid) }
            let beforeIdleThreads = tracked.map { ThreadTotals.read(pid: $0.pid) }
            try await Task.sleep(for: .milliseconds(Int(options.idleSeconds * 1000)))
            let afterIdle = tracked.map { ProcessStats.read(pid: $0.pid) }
            costs.append(
                PhaseCosts.compute(
                    phase: "idle", seconds: Double(monotonicNanos() - idleStart) / 1e9, events: 0,
                    names: tracked.map(\.name), before: beforeIdleThreads,
                    after: tracked.map { ThreadTotals.read(pid: $0.pid) }))
            report.costs = costs
            span("idle", idleStart)
            report.idleSeconds = options.idleSeconds
            let ticks = monitor.stop()

            for service in services where !service.isRunning {
                report.notes.append("\(service.name) exited during the run; see \(service.logPath)")
            }
            for (index, process) in tracked.enumerated() {
                guard let end = afterIdle[index] else { continue }
                // Services: since their start (this run). The broker and the load generator: since the load began.
                let cpu = process.name == "rabbitmq" || process.name == "bench" ? end.cpuSeconds - (startStats[index]?.cpuSeconds ?? 0) : end.cpuSeconds
                report.processes.append(
                    ProcessReport(
                        name: process.name, peakRSSMiB: Double(end.peakRSSKiB) / 1024, cpuSeconds: cpu,
                        idleCPUSeconds: beforeIdle[index].map { end.cpuSeconds - $0.cpuSeconds },
                        cpuMsPerEvent: total > 0 ? cpu * 1000 / Double(total) : nil))
            }

            report.phases = measured.map(\.report)
            let snapshots = try readSnapshots(snapshotSource, runID: runID)
            report.endToEnd = endToEnd(measured: measured, snapshots: snapshots, anchor: anchor)
            report.timeline = timeline(measured: measured.map(\.measurement), snapshots: snapshots, ticks: ticks, anchor: anchor)
            report.spans = spans
            if let whole = report.endToEnd.first, whole.events < whole.created {
                report.notes.append("\(whole.created - whole.events) of \(whole.created) created users have no snapshot")
            }
        } catch {
            _ = monitor.stop()
            for service in services { await service.stop() }
            throw error
        }
        say("stopping the services...")
        for service in services { await service.stop() }
    }

    private static func waitUntilReady(_ service: ServiceProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !service.isReady() {
            guard service.isRunning, ContinuousClock.now < deadline else {
                throw BenchmarkError("\(service.name) did not become ready; last log lines:\n\(service.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private static func created(_ measurements: [PhaseMeasurement]) -> Int {
        measurements.reduce(0) { $0 + $1.samples.lazy.filter { $0.status == 201 }.count }
    }

    /// Waits until the order database holds `count` snapshots of this run, or throws after the drain timeout.
    private static func waitForSnapshots(
        count: Int, _ source: SnapshotSource, runID: String, _ options: BenchmarkOptions
    ) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(options.drainTimeout * 1000))
        let reader = SnapshotReader(source, runID: runID)
        var seen = 0
        while true {
            seen = reader.count() ?? 0
            if seen >= count { return }
            guard ContinuousClock.now < deadline else {
                throw BenchmarkError(
                    "after \(Int(options.drainTimeout)) s only \(seen) of \(count) snapshots were committed")
            }
            try await Task.sleep(for: source.pollInterval)
        }
    }

    // MARK: - Analysis

    static func phaseReport(
        name: String, kind: String, connections: Int, rate: Double?, _ measurement: PhaseMeasurement
    ) -> LoadPhaseReport {
        let seconds = Double(measurement.endNanos - measurement.startNanos) / 1e9
        var errors: [String: Int] = measurement.transportErrors
        var created = 0
        for sample in measurement.samples where sample.status != 0 {
            if sample.status == 201 { created += 1 } else { errors[String(sample.status), default: 0] += 1 }
        }
        return LoadPhaseReport(
            name: name, kind: kind, connections: connections, targetRate: rate, seconds: seconds,
            requests: measurement.samples.count, created: created,
            requestsPerSecond: Double(measurement.samples.count) / seconds,
            latency: LatencySummary(microseconds: measurement.samples.lazy.map { $0.latency / 1000 }),
            errors: errors, connects: measurement.connects)
    }

    struct Snapshot {
        var phase: Int
        var occurredMs: Double
        var updatedMs: Double
    }

    static func readSnapshots(_ source: SnapshotSource, runID: String) throws -> [Snapshot] {
        try SnapshotReader(source, runID: runID).rows().compactMap { row in
            guard let phase = LoadGenerator.phase(ofEmail: row.email, runID: runID),
                let occurred = row.occurredAt.flatMap(parseISO8601Millis),
                let updated = row.updatedAt.flatMap(parseISO8601Millis)
            else { return nil }
            return Snapshot(phase: phase, occurredMs: occurred, updatedMs: updated)
        }
    }

    static func endToEnd(
        measured: [(report: LoadPhaseReport, measurement: PhaseMeasurement, index: Int)], snapshots: [Snapshot],
        anchor: ClockAnchor
    ) -> [EndToEndReport] {
        func entry(_ scope: String, firstSend: UInt64, created: Int, _ rows: [Snapshot]) -> EndToEndReport {
            let first = anchor.unixMillis(atMonotonic: firstSend)
            let last = rows.map(\.updatedMs).max() ?? first
            let seconds = max(0.001, (last - first) / 1000)
            return EndToEndReport(
                scope: scope, events: rows.count, created: created, eventsPerSecond: Double(rows.count) / seconds,
                seconds: seconds,
                lag: LatencySummary(microseconds: rows.lazy.map { UInt64(max(0, $0.updatedMs - $0.occurredMs) * 1000) }))
        }
        guard let firstPhase = measured.first else { return [] }
        let firstSend = firstPhase.measurement.samples.first?.start ?? firstPhase.measurement.startNanos
        var result = [
            entry("whole run", firstSend: firstSend, created: measured.reduce(0) { $0 + $1.report.created }, snapshots)
        ]
        for phase in measured {
            result.append(
                entry(
                    phase.report.name,
                    firstSend: phase.measurement.samples.first?.start ?? phase.measurement.startNanos,
                    created: phase.report.created, snapshots.filter { $0.phase == phase.index }))
        }
        return result
    }

    static func timeline(
        measured: [PhaseMeasurement], snapshots: [Snapshot], ticks: [Monitor.Tick], anchor: ClockAnchor
    ) -> [TimelinePoint] {
        var latencies: [Int: [UInt64]] = [:]
        var errors: [Int: Int] = [:]
        for measurement in measured {
            for sample in measurement.samples where sample.start >= anchor.monotonic {
                let second = Int((sample.start - anchor.monotonic) / 1_000_000_000)
                latencies[second, default: []].append(sample.latency / 1000)
                if sample.status != 201 { errors[second, default: 0] += 1 }
            }
        }
        var lags: [Int: [UInt64]] = [:]
        for snapshot in snapshots {
            let second = Int(floor((snapshot.updatedMs - anchor.unixMillis) / 1000))
            guard second >= 0 else { continue }
            lags[second, default: []].append(UInt64(max(0, snapshot.updatedMs - snapshot.occurredMs) * 1000))
        }
        var cpu: [Int: [String: Double]] = [:]
        var switches: [Int: [String: Double]] = [:]
        for tick in ticks {
            cpu[tick.second] = tick.cpu
            switches[tick.second] = tick.switches
        }
        let last = max(latencies.keys.max() ?? 0, lags.keys.max() ?? 0, cpu.keys.max() ?? 0)
        return (0...last).map { second in
            let http = latencies[second].map { LatencySummary(microseconds: $0) }
            let lag = lags[second].map { LatencySummary(microseconds: $0) }
            return TimelinePoint(
                second: second, requests: http?.count ?? 0, errors: errors[second] ?? 0, p50: http?.p50, p99: http?.p99,
                snapshots: lag?.count ?? 0, lagP50: lag?.p50, cpu: cpu[second] ?? [:],
                contextSwitches: switches[second])
        }
    }

    // MARK: - Helpers

    private static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    /// Writes a progress line to stdout at once (unbuffered, also when stdout is a pipe).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private static func stamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }

    private static func machine() -> [String: String] {
        var name = utsname()
        uname(&name)
        func text<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return [
            "cores": "\(ProcessInfo.processInfo.activeProcessorCount)",
            "kernel": "\(text(name.sysname)) \(text(name.release))",
            "machine": text(name.machine),
        ]
    }

    private static func settings(_ options: BenchmarkOptions) -> [String: String] {
        [
            "phases": options.phases.map(\.rawValue).sorted().joined(separator: ","),
            "warmup": "\(options.warmup)", "closedDuration": "\(options.closedDuration)",
            "concurrency": options.concurrency.map(String.init).joined(separator: ","),
            "openDuration": "\(options.openDuration)", "openRate": options.openRate.map { "\($0)" } ?? "auto",
            "openConnections": "\(options.openConnections)", "ceilingMessages": "\(options.ceilingMessages)",
            "ceilingPrefetch": "\(options.ceilingPrefetch)", "ceilingBatch": "\(options.ceilingBatch)",
            "ceilingBodyBytes": "\(options.ceilingBodyBytes)", "queueType": options.queueType.rawValue,
            "idleSeconds": "\(options.idleSeconds)", "logLevel": options.logLevel,
            "instances": "\(options.instances)",
            "store": options.orderDatabaseURL == nil && options.userDatabaseURL == nil ? "sqlite" : "postgres",
        ]
    }
}

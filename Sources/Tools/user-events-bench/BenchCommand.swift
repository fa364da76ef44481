import ArgumentParser
import Benchmark
import Foundation
import Messaging

/// `user-events-bench`: drives the three services (started here as processes) and the broker, and writes
/// `bench-results/<time>/{table.txt,report.json,chart.svg}`.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user-events-bench",
        abstract: "Load-tests POST /users through the whole system and measures the broker's own ceiling.")

    @Option(name: .customLong("rabbitmq-url"), help: "Broker URL (default: RABBITMQ_URL).")
    var rabbitmqURL: String?

    @Option(help: "Directory with the release-built services (default: this binary's directory).")
    var binDir: String?

    @Option(help: "Where the timestamped results folder goes.")
    var output = "bench-results"

    @Option(help: "Phases to run, comma-separated: closed,open,ceiling.")
    var phases = "closed,open,ceiling"

    @Option(help: "Seconds of warm-up (16 connections) before the closed loops; 0 for none.")
    var warmup = 2.0

    @Option(help: "Seconds per closed-loop concurrency level.")
    var closedDuration = 10.0

    @Option(help: "Closed-loop concurrency levels, comma-separated.")
    var concurrency = "1,16,64"

    @Option(help: "Seconds of open loop.")
    var openDuration = 15.0

    @Option(help: "Open-loop requests per second (default: half the best closed-loop rate, or 200 without one).")
    var rate: Double?

    @Option(help: "Most connections the open loop uses.")
    var openConnections = 128

    @Option(help: "Messages through the broker ceiling's two queues.")
    var ceilingMessages = 30_000

    @Option(help: "Prefetch of the ceiling's consumers.")
    var ceilingPrefetch: UInt16 = 256

    @Option(help: "Messages per confirmed publish to the ceiling's first queue.")
    var ceilingBatch = 1_000

    @Option(help: "Body size of the ceiling's messages, in bytes.")
    var ceilingBodyBytes = 200

    @Option(help: "classic or quorum: the queues of the services (AMQP_QUEUE_TYPE) and of the ceiling.")
    var queueType = "classic"

    @Option(help: "Instances of each service (more than one needs --user-db-url and --order-db-url).")
    var instances = 1

    @Option(name: .customLong("user-db-url"), help: "USER_DB_URL for the user service (postgres://...); default: a fresh SQLite file.")
    var userDbURL: String?

    @Option(name: .customLong("order-db-url"), help: "ORDER_DB_URL for the order service (postgres://..., read back with psql); default: a fresh SQLite file.")
    var orderDbURL: String?

    @Option(help: "An earlier run's report.json: prints each figure of this run beside it, with the change.")
    var compare: String?

    @Option(help: "With --compare: a later report.json to set beside it, without running anything.")
    var compareWith: String?

    @Option(help: "Seconds of idleness at the end for the idle-CPU figure.")
    var idle = 5.0

    @Option(help: "Most seconds to wait for snapshots to catch up.")
    var drainTimeout = 60.0

    @Option(help: "LOG_LEVEL for the services.")
    var logLevel = "info"

    @Option(help: "The broker's pid, to report its CPU and memory too.")
    var brokerPid: Int32?

    @Flag(help: "Keep the databases after the run.")
    var keepData = false

    @Option(help: "Only encode or decode one event body N times, in process (MODE:N; see CodecLoop.swift), for callgrind.")
    var codecLoop: String?

    func run() async throws {
        if let codecLoop {
            try CodecLoop.run(codecLoop)
            return
        }
        if let compareWith {
            guard let compare else { throw ValidationError("--compare-with needs --compare <earlier report.json>") }
            print(Comparison.render(earlier: try Self.load(compare), current: try Self.load(compareWith)))
            return
        }
        guard let url = rabbitmqURL ?? ProcessInfo.processInfo.environment["RABBITMQ_URL"], !url.isEmpty else {
            throw ValidationError("no broker: pass --rabbitmq-url or set RABBITMQ_URL (scripts/bench.sh starts one)")
        }
        var options = BenchmarkOptions(brokerURL: url, binDirectory: binDir ?? Self.ownDirectory())
        options.outputDirectory = output
        var selected = Set<BenchmarkPhase>()
        for name in phases.split(separator: ",") {
            guard let phase = BenchmarkPhase(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--phases: unknown phase '\(name)' (closed, open, ceiling)")
            }
            selected.insert(phase)
        }
        options.phases = selected
        options.warmup = warmup
        options.closedDuration = closedDuration
        options.concurrency = try concurrency.split(separator: ",").map { text in
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0 else {
                throw ValidationError("--concurrency: '\(text)' is not a positive number")
            }
            return value
        }
        options.openDuration = openDuration
        options.openRate = rate
        options.openConnections = openConnections
        options.ceilingMessages = ceilingMessages
        options.ceilingPrefetch = ceilingPrefetch
        options.ceilingBatch = ceilingBatch
        options.ceilingBodyBytes = ceilingBodyBytes
        guard let type = QueueType(rawValue: queueType) else {
            throw ValidationError("--queue-type: '\(queueType)' is neither classic nor quorum")
        }
        options.queueType = type
        guard instances >= 1 else { throw ValidationError("--instances must be at least 1") }
        guard instances == 1 || (userDbURL != nil && orderDbURL != nil) else {
            throw ValidationError("--instances \(instances) needs --user-db-url and --order-db-url: a SQLite file has one writer process")
        }
        for url in [userDbURL, orderDbURL].compactMap({ $0 }) where !url.hasPrefix("postgres://") && !url.hasPrefix("postgresql://") {
            throw ValidationError("--user-db-url and --order-db-url take postgres:// URLs (SQLite files are the default)")
        }
        options.instances = instances
        options.userDatabaseURL = userDbURL
        options.orderDatabaseURL = orderDbURL
        // Read the earlier report first: a wrong path should fail before minutes of load, not after.
        let earlier = try compare.map(Self.load)
        options.idleSeconds = idle
        options.drainTimeout = drainTimeout
        options.logLevel = logLevel
        options.brokerPID = brokerPid
        options.keepData = keepData
        guard closedDuration > 0, openDuration > 0, openConnections > 0, ceilingMessages > 0, ceilingBatch > 0,
            ceilingBodyBytes > 0, idle >= 0, warmup >= 0, (rate ?? 1) > 0
        else { throw ValidationError("durations, counts and the rate must be positive") }

        let output = try await BenchmarkRunner.run(options)
        print("")
        print(output.table)
        print("")
        if let earlier {
            let comparison = Comparison.render(earlier: earlier, current: output.report)
            print(comparison)
            print("")
            try comparison.write(toFile: "\(output.directory)/comparison.txt", atomically: true, encoding: .utf8)
        }
        print("written: \(output.directory)/table.txt, report.json, chart.svg (in \(Int(output.report.totalSeconds)) s)")
    }

    /// A report.json written by an earlier run.
    static func load(_ path: String) throws -> BenchmarkReport {
        do {
            return try JSONDecoder().decode(BenchmarkReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationError("cannot read a report from \(path): \(error)")
        }
    }

    /// The directory of this executable, where `swift build` also puts the services.
    static func ownDirectory() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}

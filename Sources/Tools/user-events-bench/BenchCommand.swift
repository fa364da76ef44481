import ArgumentParser
import Benchmark
import Foundation

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

    func run() async throws {
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
        options.idleSeconds = idle
        options.drainTimeout = drainTimeout
        options.logLevel = logLevel
        options.brokerPID = brokerPid
        options.keepData = keepData
        guard closedDuration > 0, openDuration > 0, openConnections > 0, ceilingMessages > 0, ceilingBatch > 0,
            idle >= 0, warmup >= 0, (rate ?? 1) > 0
        else { throw ValidationError("durations, counts and the rate must be positive") }

        let output = try await BenchmarkRunner.run(options)
        print("")
        print(output.table)
        print("")
        print("written: \(output.directory)/table.txt, report.json, chart.svg (in \(Int(output.report.totalSeconds)) s)")
    }

    /// The directory of this executable, where `swift build` also puts the services.
    static func ownDirectory() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}

import Foundation
import Testing
import TestSupport

/// The executables started as processes with no broker to reach: how they stop when the configuration is bad, and
/// when a second signal arrives while the first still waits on a broker connection. `swift build` builds them.
struct ExecutableStartAndStopTests {
    @Test func badConfigurationStopsAtStartWithOneLine() async throws {
        let directory = try temporaryDirectory("config")
        let process = ServiceProcess(
            "user-service", environment: ["RABBITMQ_URL": "http://nope", "HTTP_PORT": "1"], logDirectory: directory)
        try process.start()
        let status = try await process.stop(signal: 0)
        #expect(status != 0)
        let output = process.logTail().trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(output.split(separator: "\n").count == 1, "one line: \(output)")
        #expect(output.contains("RABBITMQ_URL"))
    }

    /// A second SIGTERM exits at once, even while the first is still waiting for work to finish (here: a broker
    /// connection stuck in its handshake with a server that never answers).
    @Test func secondSignalExitsAtOnce() async throws {
        // A listening socket that is never accepted: the kernel completes TCP connects, nobody speaks AMQP.
        let silent = try SilentListener()
        defer { silent.close() }

        let directory = try temporaryDirectory("second-signal")
        let port = try freePort()
        let service = ServiceProcess(
            "user-service", arguments: ["--port", "\(port)"],
            environment: [
                "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:\(silent.port)/%2f", "USER_DB_URL": "\(directory)/u.sqlite",
                // A long grace period, so that the first shutdown is still waiting when the second signal comes.
                "SHUTDOWN_GRACE_SECONDS": "120",
            ],
            logDirectory: directory)
        try service.start()
        // Generous: this suite runs while the whole suite starts up, when a 2-core machine is at its busiest.
        try await eventually(timeout: .seconds(30), "user service answers") {
            (try? await httpRequest("GET", port: port, path: "/healthz").status) == 200
        }
        service.send(SIGTERM)
        try await eventually("the first signal is handled") { service.log().contains("SIGTERM received:") }
        let status = try await service.stop(signal: SIGTERM, timeout: .seconds(5))
        #expect(status == 130)
        #expect(service.log().contains("exiting now"))
    }
}

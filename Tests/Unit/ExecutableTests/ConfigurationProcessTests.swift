import Foundation
import TestSupport
import Testing

/// Settings as the real executables apply them: the start-up line and the exit on a bad setting.
struct ConfigurationProcessTests {
    /// The real executable: its start-up line names the broker with the password masked, and so do the lines about
    /// failed connection attempts (nothing listens on port 1).
    @Test func aServiceLogsTheBrokerWithoutThePassword() async throws {
        let secret = "pw-\(UUID().uuidString.prefix(8))"
        let directory = try temporaryDirectory("redaction")
        let process = ServiceProcess(
            "user-service",
            environment: [
                "RABBITMQ_URL": "amqp://svc:\(secret)@127.0.0.1:1/%2f", "HTTP_PORT": "0",
                "USER_DB_URL": "\(directory)/users.sqlite", "LOG_LEVEL": "debug",
            ],
            logDirectory: directory)
        try process.start()
        do {
            try await eventually(timeout: .seconds(20), "start-up line and a failed connection attempt logged") {
                let log = process.log()
                return log.contains("broker=amqp://svc:***@127.0.0.1:1/%2f") && log.contains("failed (attempt")
            }
        } catch {
            _ = try? await process.stop()
            throw TestFailure("\(error)\n\(process.logTail())")
        }
        try await process.stop()
        #expect(!process.log().contains(secret), "\(process.logTail())")
    }

    @Test func aServiceWithACertificateButNoKeyStopsWithOneLine() async throws {
        let directory = try temporaryDirectory("tls-config")
        let cert = "\(directory)/client.pem"
        _ = FileManager.default.createFile(atPath: cert, contents: Data())
        let process = ServiceProcess(
            "user-service",
            environment: [
                "RABBITMQ_URL": "amqps://svc:secret@127.0.0.1:1/%2f", "AMQP_CLIENT_CERT": cert, "AMQP_CLIENT_KEY": "",
                "HTTP_PORT": "0", "USER_DB_URL": "\(directory)/users.sqlite",
            ],
            logDirectory: directory)
        try process.start()
        let status = try await process.stop(signal: 0)
        #expect(status == 78)
        let output = process.logTail().trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(output == "invalid configuration: AMQP_CLIENT_KEY: is required with AMQP_CLIENT_CERT", "\(output)")
    }
}

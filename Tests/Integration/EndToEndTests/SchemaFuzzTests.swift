import Foundation
import Testing
import TestSupport

/// Schemathesis generates requests from the OpenAPI document (valid and invalid, plus stateful sequences
/// following its links) and checks every response: no 5xx, statuses, content types, headers and bodies as
/// documented. Two checks are left out: `positive_data_acceptance`, because the API's validation (trimmed
/// names, plausible emails) is stricter than JSON Schema can say and such requests get a documented 422; and
/// `ensure_resource_availability`, because a POST retried with an `Idempotency-Key` replays the original 201
/// even after that user was deleted, which is the documented idempotency contract.
@Suite(.serialized)
struct SchemaFuzzTests {
    @Test(.timeLimit(.minutes(5)))
    func userAPIConformsToItsDocumentUnderFuzzing() async throws {
        let system = try await RunningSystem.start("fuzz")
        defer { Task { await system.stopAll() } }

        let output = "\(system.directory)/schemathesis.log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // Schemathesis keeps a cache in its working directory: keep it out of the repository.
        process.currentDirectoryURL = URL(fileURLWithPath: system.directory)
        process.arguments = [
            "schemathesis", "run", "http://127.0.0.1:\(system.userPort)/openapi.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance,ensure_resource_availability",
            "--max-examples", "40", "--workers", "2", "--max-time", "60", "--no-color",
        ]
        FileManager.default.createFile(atPath: output, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        let report = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(
            process.terminationStatus == 0,
            "schemathesis found problems (is it installed? `make test` installs it):\n\(report.suffix(4000))")
        #expect(report.contains("passed"), "\(report.suffix(2000))")
        #expect(system.user.isRunning, "the user service survived the fuzzing")
    }
}

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
        try await withCleanup({ await system.stopAll() }) {
            // Schemathesis keeps a cache in its working directory (`env -C`): keep it out of the repository.
            let outcome = try await runProcess([
                "/usr/bin/env", "-C", system.directory,
                "schemathesis", "run", "http://127.0.0.1:\(system.userPort)/openapi.json",
                "--checks", "all", "--exclude-checks", "positive_data_acceptance,ensure_resource_availability",
                "--max-examples", "40", "--workers", "2", "--max-time", "60", "--no-color",
            ])
            let report = outcome.output + outcome.errors
            #expect(
                outcome.status == 0,
                "schemathesis found problems (is it installed? `make test` installs it):\n\(report.suffix(4000))")
            #expect(report.contains("passed"), "\(report.suffix(2000))")
            #expect(system.user.isRunning, "the user service survived the fuzzing")
        }
    }
}

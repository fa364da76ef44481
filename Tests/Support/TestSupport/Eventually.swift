/// Polls `condition` until it is true or `timeout` passes; then throws a ``TestFailure`` with `message`.
/// Use it instead of sleeps: a test waits exactly as long as the condition needs, and fails instead of hanging.
public func eventually(
    timeout: Duration = .seconds(10), _ message: String, _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    var pause = Duration.milliseconds(10)
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline { throw TestFailure("timed out after \(timeout): \(message)") }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(200))
    }
}

/// A failed expectation in test support code, with what went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    /// What failed.
    public let description: String

    /// A failure that says `description`.
    public init(_ description: String) { self.description = description }
}

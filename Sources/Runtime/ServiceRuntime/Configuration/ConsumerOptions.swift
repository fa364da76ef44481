public import ArgumentParser
public import Foundation

/// Flags of the services that consume a queue.
public struct ConsumerOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("max-attempts"),
        help: "Attempts to process a message before it moves to <queue>.dead (env MAX_DELIVERY_ATTEMPTS, default 5).")
    public var maxAttempts: String?

    @Option(
        name: .customLong("prefetch"),
        help: "Unacked deliveries in flight, processed concurrently (env PREFETCH, default 256).")
    public var prefetch: String?

    public init() {}

    /// The resolved settings, or the first invalid one.
    public func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (maxAttempts: Int, prefetch: UInt16) {
        let attempts = try Setting.positiveInteger(
            Setting.value(maxAttempts, env: "MAX_DELIVERY_ATTEMPTS", in: environment),
            setting: "MAX_DELIVERY_ATTEMPTS", default: 5)
        let prefetch = try Setting.positiveInteger(
            Setting.value(prefetch, env: "PREFETCH", in: environment), setting: "PREFETCH", default: 256)
        guard prefetch <= Int(UInt16.max) else {
            throw ConfigurationError(setting: "PREFETCH", problem: "'\(prefetch)' is over \(UInt16.max)")
        }
        return (attempts, UInt16(prefetch))
    }
}

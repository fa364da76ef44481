import Logging
public import ServiceLifecycle

/// Services of one app running in this process, in a ServiceGroup that the test shuts down.
public final class InProcessService: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// Starts `services` in start order.
    public init(_ services: [any Service]) {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], cancellationSignals: [],
                logger: Logger(label: "test")))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Shuts the services down gracefully and waits until they stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

import Messaging

/// Publisher and Consumer, for running them while a test body runs.
protocol RunnableService: Sendable {
    func run() async throws
}

extension Publisher: RunnableService {}
extension Consumer: RunnableService {}

/// Runs `services` while `body` runs, then cancels them and waits until they have stopped.
func withServices(_ services: any RunnableService..., body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for service in services {
            group.addTask { try await service.run() }
        }
        do {
            try await body()
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
        group.cancelAll()
        try await group.waitForAll()
    }
}

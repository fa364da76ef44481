import ServiceLifecycle

/// Runs `services` (publishers, consumers: any ServiceLifecycle `Service`) while `body` runs, then cancels them and
/// waits until they have stopped.
func withServices(_ services: any Service..., body: () async throws -> Void) async throws {
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

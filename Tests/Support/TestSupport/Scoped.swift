/// Runs `body`, then `cleanup`, awaited, whether `body` returned or threw: the way a test stops the processes it
/// started (a `defer { Task { ... } }` would not wait, and could leave them running after the test).
public func withCleanup<T>(
    _ cleanup: () async -> Void, _ body: () async throws -> T
) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}

import StoreConformance
import Testing

/// The store conformance suite on SQLite (the same cases run on PostgreSQL under Tests/Integration).
struct StoreConformanceSQLiteTests {
    @Test(arguments: UserStoreConformance.Case.allCases)
    func userStore(_ case: UserStoreConformance.Case) async throws {
        try await UserStoreConformance.run(`case`, on: .sqlite)
    }

    @Test(arguments: SnapshotStoreConformance.Case.allCases)
    func snapshotStore(_ case: SnapshotStoreConformance.Case) async throws {
        try await SnapshotStoreConformance.run(`case`, on: .sqlite)
    }
}

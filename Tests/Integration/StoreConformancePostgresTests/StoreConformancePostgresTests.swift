import StoreConformance
import Testing

/// The store conformance suite on PostgreSQL (a server of the test process's own, a fresh database per case).
struct StoreConformancePostgresTests {
    @Test(arguments: UserStoreConformance.Case.allCases)
    func userStore(_ case: UserStoreConformance.Case) async throws {
        try await UserStoreConformance.run(`case`, on: .postgres)
    }

    @Test(arguments: SnapshotStoreConformance.Case.allCases)
    func snapshotStore(_ case: SnapshotStoreConformance.Case) async throws {
        try await SnapshotStoreConformance.run(`case`, on: .postgres)
    }
}

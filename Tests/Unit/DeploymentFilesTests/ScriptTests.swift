import Foundation
import Testing

/// The shell scripts the Makefile, the tests and `make run-cluster` call: they must parse and be executable
/// in a fresh clone. (They are exercised for real by the integration tests that start brokers and databases.)
struct ScriptTests {
    static func scripts() throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: RepositoryFiles.url("scripts").path)
        return names.filter { $0.hasSuffix(".sh") }.sorted()
    }

    @Test func theClusterAndDatabaseScriptsExist() throws {
        let scripts = try Self.scripts()
        for name in ["rabbitmq-node.sh", "rabbitmq-cluster.sh", "postgres-node.sh", "install-deps.sh"] {
            #expect(scripts.contains(name), "\(name)")
        }
    }

    @Test(arguments: try scripts())
    func parsesAndIsExecutable(_ name: String) throws {
        let path = RepositoryFiles.url("scripts/\(name)").path
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let mode = try #require(attributes[.posixPermissions] as? NSNumber).intValue
        #expect(mode & 0o111 == 0o111, "\(name) is executable (mode \(String(mode, radix: 8)))")

        let bash = Process()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-n", path]
        let errors = Pipe()
        bash.standardError = errors
        try bash.run()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        bash.waitUntilExit()
        #expect(bash.terminationStatus == 0, "bash -n \(name): \(output)")
    }
}

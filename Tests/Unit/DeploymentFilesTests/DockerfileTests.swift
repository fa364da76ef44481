import Foundation
import Testing
import Yams

/// The Dockerfile, read instruction by instruction: a Swift build stage, a slim runtime stage, and every
/// executable product of Package.swift shipped unless it is listed as not shipped.
struct DockerfileTests {
    /// One instruction (`RUN`, `COPY`, ...) with its arguments, continuation lines joined.
    struct Instruction {
        var keyword: String
        var arguments: String
    }

    /// One build stage: its `FROM` image and name, and its instructions.
    struct Stage {
        var image: String
        var name: String?
        var instructions: [Instruction] = []

        func arguments(of keyword: String) -> [String] {
            instructions.filter { $0.keyword == keyword }.map(\.arguments)
        }
    }

    static func stages() throws -> [Stage] {
        var logical: [String] = []
        var pending = ""
        for line in try RepositoryFiles.text("Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") || (trimmed.isEmpty && pending.isEmpty) { continue }
            if trimmed.hasSuffix("\\") {
                pending += trimmed.dropLast() + " "
            } else {
                logical.append(pending + trimmed)
                pending = ""
            }
        }
        var stages: [Stage] = []
        for line in logical where !line.isEmpty {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            let instruction = Instruction(keyword: parts[0].uppercased(), arguments: parts.count > 1 ? parts[1] : "")
            if instruction.keyword == "FROM" {
                let words = instruction.arguments.split(separator: " ").map(String.init)
                let name = words.count == 3 && words[1].uppercased() == "AS" ? words[2] : nil
                stages.append(Stage(image: words[0], name: name))
            } else {
                try #require(!stages.isEmpty, "\(instruction.keyword) before FROM")
                stages[stages.count - 1].instructions.append(instruction)
            }
        }
        return stages
    }

    @Test func buildsWithSwiftAndRunsOnSlimDebian() throws {
        let stages = try Self.stages()
        #expect(stages.count == 2)
        let build = try #require(stages.first)
        let runtime = try #require(stages.last)
        #expect(build.name == "build" && build.image.hasPrefix("swift:6"))
        #expect(runtime.name == "runtime" && runtime.image == "debian:bookworm-slim")
        #expect(build.arguments(of: "RUN").contains { $0.contains("apt-get") && $0.contains("librabbitmq-dev") })
    }

    @Test func shipsEveryExecutableProductBuiltInRelease() throws {
        let products = try RepositoryFiles.executableProducts()
        #expect(products.contains("user-service"), "Package.swift read: \(products)")
        for unshipped in RepositoryFiles.executablesNotShipped.keys {
            #expect(products.contains(unshipped), "\(unshipped) is no longer a product")
        }
        let build = try #require(try Self.stages().first)
        let runs = build.arguments(of: "RUN")
        for product in try RepositoryFiles.shippedExecutables() {
            #expect(
                runs.contains { $0.contains("swift build -c release") && "\($0) ".contains("--product \(product) ") },
                "\(product) is built in release mode")
            #expect(runs.contains { $0.contains("\"$bin/\(product)\"") && $0.contains("/staging") }, "\(product) is staged")
        }
        // Bundle.module looks for resource bundles next to the executable.
        if try RepositoryFiles.text("Package.swift").contains("resources:") {
            #expect(runs.contains { $0.contains("*.resources") && $0.contains("/staging") })
        }
    }

    @Test func runtimeHasTheLibrariesTheHealthCheckToolAndNoRoot() throws {
        let runtime = try #require(try Self.stages().last)
        let install = runtime.arguments(of: "RUN").joined(separator: " ")
        for package in ["librabbitmq4", "libsqlite3-0", "ca-certificates", "curl"] {
            #expect(install.contains(" \(package)"), "\(package) installed")
        }
        #expect(runtime.arguments(of: "COPY").contains { $0.contains("--from=build") && $0.contains("/staging") })
        let user = try #require(runtime.arguments(of: "USER").last)
        #expect(!["root", "0"].contains(String(user.split(separator: ":")[0])))
        let command = try #require(runtime.arguments(of: "CMD").last)
        #expect(try RepositoryFiles.shippedExecutables().contains { command == "[\"\($0)\"]" })
    }

    @Test func composeRunsOnlyWhatTheImageShips() throws {
        let shipped = Set(try RepositoryFiles.shippedExecutables())
        let compose = try ComposeInterpolation(environment: ComposeFileTests.secrets)
            .apply(to: RepositoryFiles.text("docker-compose.prod.yml"))
        let services = try #require(try Yams.compose(yaml: compose)?["services"]?.mapping)
        var built = 0
        for (name, service) in services where service["build"] != nil {
            built += 1
            let command = service["command"]?.array(of: String.self) ?? []
            #expect(command.first.map(shipped.contains) == true, "\(name.string ?? "") runs \(command)")
            let check = service["healthcheck"]?["test"]?.array(of: String.self) ?? []
            #expect(check.count > 1 && check[1] == "curl", "the runtime image has curl, nothing else to probe with")
        }
        #expect(built == 3)
    }

    @Test func buildContextLeavesOutBuildsAndDatabases() throws {
        let ignored = Set(try RepositoryFiles.text(".dockerignore").split(separator: "\n").map(String.init))
        for pattern in [".build", ".run", "*.sqlite", ".git"] {
            #expect(ignored.contains(pattern), "\(pattern)")
        }
    }
}

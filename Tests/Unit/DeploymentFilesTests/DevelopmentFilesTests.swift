import Foundation
import TestSupport
import Testing
import Yams

/// Docker is not available where the suite runs, so the compose and devcontainer files are checked by reading them.
struct DevelopmentFilesTests {
    private func load(_ path: String) throws -> [String: Any] {
        let text = try String(contentsOfFile: "\(repositoryRoot)/\(path)", encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any], "\(path) is a mapping")
    }

    @Test func composeFileRunsABrokerWithManagementAndAHealthCheck() throws {
        let compose = try load("docker-compose.local.yml")
        let services = try #require(compose["services"] as? [String: Any])
        let rabbitmq = try #require(services["rabbitmq"] as? [String: Any])
        let image = try #require(rabbitmq["image"] as? String)
        #expect(image.hasPrefix("rabbitmq:") && image.contains("management"))
        let ports = try #require(rabbitmq["ports"] as? [String])
        #expect(ports.contains("5672:5672") && ports.contains("15672:15672"))
        let health = try #require(rabbitmq["healthcheck"] as? [String: Any])
        #expect(health["test"] != nil)
    }

    @Test func devcontainerUsesTheComposeBroker() throws {
        // devcontainer.json is JSON, which YAML reads too.
        let container = try load(".devcontainer/devcontainer.json")
        let files = try #require(container["dockerComposeFile"] as? [String])
        #expect(files.contains("../docker-compose.local.yml"))
        let runServices = try #require(container["runServices"] as? [String])
        #expect(runServices.contains("rabbitmq"))
        let service = try #require(container["service"] as? String)
        let environment = try #require(container["containerEnv"] as? [String: String])
        #expect(environment["RABBITMQ_URL"]?.contains("@rabbitmq:5672") == true)

        for file in files {
            let compose = try load(".devcontainer/\(file)")
            if let services = compose["services"] as? [String: Any], services[service] != nil { return }
        }
        Issue.record("no compose file defines the devcontainer's service '\(service)'")
    }

    @Test func devcontainerBuildsWithTheDockerfilesSwift() throws {
        let compose = try load(".devcontainer/docker-compose.devcontainer.yml")
        let services = try #require(compose["services"] as? [String: Any])
        let dev = try #require(services["dev"] as? [String: Any])
        let image = try #require(dev["image"] as? String)
        let dockerfile = try String(contentsOfFile: "\(repositoryRoot)/Dockerfile", encoding: .utf8)
        let buildImage = try #require(
            dockerfile.split(separator: "\n").first { $0.hasPrefix("FROM swift:") }?
                .split(separator: " ").dropFirst().first.map(String.init),
            "the Dockerfile builds FROM a swift: image")
        #expect(image == buildImage, "the devcontainer and the Dockerfile should build with one Swift")
    }
}

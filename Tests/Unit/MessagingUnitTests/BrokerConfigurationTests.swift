import Messaging
import Testing

struct BrokerConfigurationTests {
    @Test func defaults() throws {
        let configuration = try BrokerConfiguration(url: "amqp://")
        #expect(configuration.host == "localhost")
        #expect(configuration.port == 5672)
        #expect(configuration.user == "guest")
        #expect(configuration.password == "guest")
        #expect(configuration.virtualHost == "/")
        #expect(configuration.useTLS == false)
        #expect(configuration.heartbeat == .seconds(30))
        #expect(configuration.connectionName == "")
    }

    @Test func fullURL() throws {
        let configuration = try BrokerConfiguration(url: "amqp://alice:s%40cret@rabbit.local:5673/production")
        #expect(configuration.host == "rabbit.local")
        #expect(configuration.port == 5673)
        #expect(configuration.user == "alice")
        #expect(configuration.password == "s@cret")
        #expect(configuration.virtualHost == "production")
    }

    @Test(arguments: [
        ("amqp://guest:guest@localhost:5672/%2f", "/"),
        ("amqp://guest:guest@localhost:5672/%2F", "/"),
        ("amqp://guest:guest@localhost:5672/", "/"),
        ("amqp://guest:guest@localhost:5672", "/"),
        ("amqp://localhost/my%2fvhost", "my/vhost"),
        ("amqp://localhost/a%20b", "a b"),
    ])
    func virtualHostIsPercentDecoded(url: String, expected: String) throws {
        #expect(try BrokerConfiguration(url: url).virtualHost == expected)
    }

    @Test func amqpsDefaultsToPort5671() throws {
        let configuration = try BrokerConfiguration(url: "amqps://user:pw@broker.example")
        #expect(configuration.useTLS)
        #expect(configuration.port == 5671)
        #expect(configuration.caCertificatePath == nil)
        #expect(configuration.redactedURL == "amqps://user:***@broker.example:5671/%2f")
    }

    @Test func heartbeatQueryItem() throws {
        #expect(try BrokerConfiguration(url: "amqp://localhost/?heartbeat=5").heartbeat == .seconds(5))
    }

    @Test(arguments: [
        ("http://localhost/", "scheme"),
        ("localhost:5672", "scheme"),
        ("amqp://localhost:99999/", "out of range"),
        ("amqp://localhost:0/", "out of range"),
        ("amqp://localhost/a/b", "path segment"),
        ("amqp://local host/", "not a URL"),
        ("amqp://localhost/?heartbeat=soon", "heartbeat"),
        ("", "scheme"),
    ])
    func invalidURLsNameTheProblem(url: String, problem: String) throws {
        let error = #expect(throws: MessagingError.self) { try BrokerConfiguration(url: url) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.description.contains(problem) == true, "\(String(describing: error))")
    }

    @Test func redactedURLHidesThePassword() throws {
        let configuration = try BrokerConfiguration(url: "amqp://guest:topsecret@127.0.0.1:5672/%2f")
        #expect(configuration.redactedURL == "amqp://guest:***@127.0.0.1:5672/%2f")
        #expect(!configuration.redactedURL.contains("topsecret"))
        #expect(!"\(configuration.redactedURL)".contains("topsecret"))
    }
}

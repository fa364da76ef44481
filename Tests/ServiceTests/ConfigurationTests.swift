import ArgumentParser
import Logging
import Messaging
import Testing

@testable import ServiceRuntime

struct ConfigurationTests {
    @Test(arguments: [
        ("sqlite:///./users.db", "./users.db"),
        ("sqlite:///users.db", "users.db"),
        ("sqlite:////var/data/users.db", "/var/data/users.db"),
        ("/tmp/plain.sqlite", "/tmp/plain.sqlite"),
        ("relative/file.sqlite", "relative/file.sqlite"),
        ("sqlite:///my%20dir/a.db", "my dir/a.db"),
    ])
    func databaseURLsInTheOriginalSystemsForm(url: String, path: String) throws {
        #expect(try Setting.sqlitePath(url, setting: "USER_DB_URL") == path)
    }

    @Test(arguments: ["sqlite://", "sqlite:///:memory:", "postgres://db/x", "sqlite:relative", ""])
    func unusableDatabaseURLsNameTheSetting(url: String) {
        do {
            _ = try Setting.sqlitePath(url, setting: "ORDER_DB_URL")
            Issue.record("accepted \(url)")
        } catch let error as ConfigurationError {
            #expect(error.description.hasPrefix("invalid configuration: ORDER_DB_URL:"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func flagsWinOverTheEnvironmentWhichWinsOverDefaults() throws {
        var options = try CommonOptions.parse([])
        let environment = ["HTTP_PORT": "9000", "LOG_LEVEL": "debug", "RABBITMQ_URL": "amqp://u:p@h:1234/v"]
        var settings = try options.resolve(defaultPort: 8000, environment: environment)
        #expect(settings.port == 9000 && settings.logLevel == .debug)
        #expect(settings.broker.host == "h" && settings.broker.port == 1234 && settings.broker.virtualHost == "v")
        options = try CommonOptions.parse(["--port", "9100"])
        settings = try options.resolve(defaultPort: 8000, environment: environment)
        #expect(settings.port == 9100)
        settings = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: [:])
        #expect(settings.port == 8000 && settings.logLevel == .info && settings.broker.port == 5672)
        #expect(settings.broker.heartbeat == .seconds(30))
    }

    @Test(arguments: [
        (["HTTP_PORT": "eighty"], "HTTP_PORT"),
        (["HTTP_PORT": "70000"], "HTTP_PORT"),
        (["LOG_LEVEL": "loud"], "LOG_LEVEL"),
        (["RABBITMQ_URL": "http://localhost"], "RABBITMQ_URL"),
        (["AMQP_HEARTBEAT": "-1"], "AMQP_HEARTBEAT"),
    ])
    func badSettingsAreNamed(environment: [String: String], setting: String) {
        do {
            _ = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: environment)
            Issue.record("accepted \(environment)")
        } catch let error as ConfigurationError {
            #expect(error.setting == setting)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

import ArgumentParser
import Foundation
import HTTPServer
import Logging
import Messaging
import TestSupport
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

    /// `HTTP_HOST` / `--host` choose the listener's address; without them a service binds its own default
    /// (loopback for the consumers' admin ports, every interface for the user API).
    @Test func hostComesFromFlagEnvironmentOrTheServicesDefault() throws {
        #expect(try CommonOptions.parse([]).resolve(defaultPort: 8001, environment: [:]).http.host == "127.0.0.1")
        let api = try CommonOptions.parse([]).resolve(defaultPort: 8000, defaultHost: Setting.everyInterface, environment: [:])
        #expect(api.http.host == "0.0.0.0" && api.http.port == 8000)
        let environment = ["HTTP_HOST": "::1"]
        #expect(try CommonOptions.parse([]).resolve(defaultPort: 1, environment: environment).host == "::1")
        #expect(try CommonOptions.parse(["--host", "0.0.0.0"]).resolve(defaultPort: 1, environment: environment).host == "0.0.0.0")
        #expect(try CommonOptions.parse([]).resolve(defaultPort: 1, environment: ["HTTP_HOST": "admin.internal"]).host == "admin.internal")
        for bad in ["0.0.0.0:80", "host name", "-bad", "a..b", "http://x"] {
            do {
                _ = try CommonOptions.parse([]).resolve(defaultPort: 1, environment: ["HTTP_HOST": bad])
                Issue.record("accepted \(bad)")
            } catch let error as ConfigurationError {
                #expect(error.description.hasPrefix("invalid configuration: HTTP_HOST:"))
            }
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
        #expect(settings.broker.confirmTimeout == .seconds(5))
    }

    @Test func theConfirmTimeoutComesFromTheEnvironmentOrItsFlagAndZeroWaitsForever() throws {
        let environment = ["AMQP_CONFIRM_TIMEOUT": "12"]
        #expect(try CommonOptions.parse([]).resolve(defaultPort: 1, environment: environment).broker.confirmTimeout == .seconds(12))
        let flag = try CommonOptions.parse(["--amqp-confirm-timeout", "0"])
        #expect(try flag.resolve(defaultPort: 1, environment: environment).broker.confirmTimeout == .zero)
    }

    @Test(arguments: [
        (["HTTP_PORT": "eighty"], "HTTP_PORT"),
        (["HTTP_PORT": "70000"], "HTTP_PORT"),
        (["LOG_LEVEL": "loud"], "LOG_LEVEL"),
        (["RABBITMQ_URL": "http://localhost"], "RABBITMQ_URL"),
        (["AMQP_HEARTBEAT": "-1"], "AMQP_HEARTBEAT"),
        (["AMQP_CONFIRM_TIMEOUT": "-1"], "AMQP_CONFIRM_TIMEOUT"),
        (["AMQP_CONFIRM_TIMEOUT": "soon"], "AMQP_CONFIRM_TIMEOUT"),
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

/// The TLS settings for the broker (`AMQP_CA_FILE`, `AMQP_CLIENT_CERT`, `AMQP_CLIENT_KEY`) and keeping the broker
/// password out of logs.
struct TLSConfigurationTests {
    /// Three empty files standing in for PEM files: validation at start only checks that they can be read.
    private static func files() throws -> (ca: String, cert: String, key: String) {
        let directory = try temporaryDirectory("tls-config")
        let names = ["ca.pem", "client.pem", "client.key"].map { "\(directory)/\($0)" }
        for name in names { _ = FileManager.default.createFile(atPath: name, contents: Data()) }
        return (names[0], names[1], names[2])
    }

    @Test func tlsFilesComeFromTheEnvironmentAndFlagsWin() throws {
        let (ca, cert, key) = try Self.files()
        let environment = [
            "RABBITMQ_URL": "amqps://u:p@broker.example/v", "AMQP_CA_FILE": ca, "AMQP_CLIENT_CERT": cert,
            "AMQP_CLIENT_KEY": key,
        ]
        var broker = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: environment).broker
        #expect(broker.useTLS && broker.port == 5671)
        #expect(broker.caCertificatePath == ca && broker.clientCertificatePath == cert && broker.clientKeyPath == key)

        let (otherCA, otherCert, otherKey) = try Self.files()
        let flags = ["--amqp-ca-file", otherCA, "--amqp-client-cert", otherCert, "--amqp-client-key", otherKey]
        broker = try CommonOptions.parse(flags).resolve(defaultPort: 8000, environment: environment).broker
        #expect(broker.caCertificatePath == otherCA)
        #expect(broker.clientCertificatePath == otherCert && broker.clientKeyPath == otherKey)

        // Without any TLS file: the default trust store and no client certificate.
        broker = try CommonOptions.parse([]).resolve(
            defaultPort: 8000, environment: ["RABBITMQ_URL": "amqps://u:p@broker.example/v"]
        ).broker
        #expect(broker.caCertificatePath == nil && broker.clientCertificatePath == nil && broker.clientKeyPath == nil)
    }

    @Test func unusableTLSSettingsAreNamed() throws {
        let (ca, cert, key) = try Self.files()
        let directory = (ca as NSString).deletingLastPathComponent
        let tls = "amqps://u:p@broker.example/v"
        let cases: [([String: String], String, String)] = [
            (["AMQP_CA_FILE": directory + "/missing.pem"], "AMQP_CA_FILE", "does not exist"),
            (["AMQP_CA_FILE": directory], "AMQP_CA_FILE", "is a directory"),
            (
                ["AMQP_CLIENT_CERT": directory + "/missing.pem", "AMQP_CLIENT_KEY": key], "AMQP_CLIENT_CERT",
                "does not exist"
            ),
            (
                ["AMQP_CLIENT_CERT": cert, "AMQP_CLIENT_KEY": directory + "/missing.key"], "AMQP_CLIENT_KEY",
                "does not exist"
            ),
            (["AMQP_CLIENT_CERT": cert], "AMQP_CLIENT_KEY", "is required with AMQP_CLIENT_CERT"),
            (["AMQP_CLIENT_KEY": key], "AMQP_CLIENT_CERT", "is required with AMQP_CLIENT_KEY"),
        ]
        for (settings, setting, problem) in cases {
            expectRefused(settings.merging(["RABBITMQ_URL": tls]) { $1 }, setting: setting, problem: problem)
        }
        // TLS files with a plain amqp:// URL would be ignored and the password sent in clear.
        expectRefused(
            ["RABBITMQ_URL": "amqp://u:p@broker.example/v", "AMQP_CA_FILE": ca], setting: "AMQP_CA_FILE",
            problem: "use amqps://")
        // The flag is named by its variable too.
        do {
            _ = try CommonOptions.parse(["--amqp-client-cert", cert]).resolve(
                defaultPort: 8000, environment: ["RABBITMQ_URL": tls])
            Issue.record("accepted a client certificate without a key")
        } catch let error as ConfigurationError {
            #expect(error.setting == "AMQP_CLIENT_KEY")
        }
    }

    private func expectRefused(
        _ environment: [String: String], setting: String, problem: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: environment)
            Issue.record("accepted \(environment)", sourceLocation: sourceLocation)
        } catch let error as ConfigurationError {
            #expect(error.setting == setting, "\(error)", sourceLocation: sourceLocation)
            #expect(error.problem.contains(problem), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func thePasswordIsMaskedWhereverAConfigurationIsPrinted() throws {
        let secret = "s3cret-\(UUID().uuidString.prefix(8))"
        var broker = try BrokerConfiguration(url: "amqps://alice:\(secret)@rabbit.example:5671/prod")
        broker.caCertificatePath = "/etc/ssl/ca.pem"
        #expect(broker.redactedURL == "amqps://alice:***@rabbit.example:5671/prod")
        var dumped = ""
        dump(broker, to: &dumped)
        for printed in ["\(broker)", String(reflecting: broker), dumped] {
            #expect(!printed.contains(secret), "\(printed)")
            #expect(printed.contains("***"), "\(printed)")
        }
        // A URL that does not parse must not echo its password in the error either.
        do {
            _ = try Setting.broker("amqps://alice:\(secret)@rabbit.example:99999/prod", heartbeat: nil)
            Issue.record("accepted port 99999")
        } catch let error as ConfigurationError {
            #expect(!error.description.contains(secret), "\(error)")
        }
    }
}

/// The broker settings of a cluster: several node URLs and the queue type.
struct ClusterSettingsTests {
    @Test func rabbitmqURLTakesOneURLPerNode() throws {
        let settings = try CommonOptions.parse([]).resolve(
            defaultPort: 8000, environment: ["RABBITMQ_URL": "amqp://u:p@r1:5672/v,amqp://u:p@r2:5673/v"])
        #expect(settings.broker.nodes.map { "\($0.host):\($0.port)" } == ["r1:5672", "r2:5673"])
        let flagged = try CommonOptions.parse(["--rabbitmq-url", "amqp://a,amqp://b,amqp://c"]).resolve(
            defaultPort: 8000, environment: ["RABBITMQ_URL": "amqp://u:p@r1:5672/v"])
        #expect(flagged.broker.nodes.map(\.host) == ["a", "b", "c"])
    }

    @Test func nodesThatDisagreeAreRefusedNamingRabbitmqURL() {
        do {
            _ = try CommonOptions.parse([]).resolve(
                defaultPort: 8000, environment: ["RABBITMQ_URL": "amqp://u:secret1@r1/v,amqp://u:secret2@r2/v"])
            Issue.record("accepted two passwords")
        } catch let error as ConfigurationError {
            #expect(error.setting == "RABBITMQ_URL")
            #expect(error.problem.contains("password"))
            #expect(!error.description.contains("secret"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func theQueueTypeIsClassicByDefaultAndQuorumOnRequest() throws {
        let none = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: [:])
        #expect(none.broker.queueType == .classic)
        let environment = try CommonOptions.parse([]).resolve(
            defaultPort: 8000, environment: ["AMQP_QUEUE_TYPE": "Quorum"])
        #expect(environment.broker.queueType == .quorum)
        let flag = try CommonOptions.parse(["--amqp-queue-type", "classic"]).resolve(
            defaultPort: 8000, environment: ["AMQP_QUEUE_TYPE": "quorum"])
        #expect(flag.broker.queueType == .classic)
    }

    @Test(arguments: ["stream", "quorum-queue", "mirrored"])
    func anUnknownQueueTypeIsNamed(value: String) {
        do {
            _ = try CommonOptions.parse([]).resolve(defaultPort: 8000, environment: ["AMQP_QUEUE_TYPE": value])
            Issue.record("accepted \(value)")
        } catch let error as ConfigurationError {
            #expect(error.setting == "AMQP_QUEUE_TYPE")
            #expect(error.problem == "'\(value)' is not one of classic, quorum")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

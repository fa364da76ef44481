import Foundation
import Testing
import Yams

/// docker-compose.prod.yml, read as `docker compose` reads it (Docker is not on these machines): the scaled
/// deployment must name PostgreSQL, a 3-node RabbitMQ cluster and two instances of each service, wired to
/// each other on quorum queues, with health checks.
struct ComposeFileTests {
    /// What an operator sets before `docker compose up` (see the file's header).
    static let secrets = [
        "POSTGRES_PASSWORD": "pgsecret", "RABBITMQ_PASSWORD": "mqsecret", "RABBITMQ_ERLANG_COOKIE": "cookie",
    ]
    static let brokers = ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]

    /// An application service and what it must be given.
    struct Application: Sendable, CustomStringConvertible {
        var name: String
        var port: Int
        /// The database URL variable and database, for the services that own one.
        var database: (variable: String, name: String)?
        var description: String { name }
    }

    static let applications = [
        Application(name: "user-service", port: 8000, database: ("USER_DB_URL", "users")),
        Application(name: "notification-service", port: 8002, database: nil),
        Application(name: "order-service", port: 8001, database: ("ORDER_DB_URL", "orders")),
    ]

    private static func compose(_ environment: [String: String] = secrets) throws -> Node {
        let text = try ComposeInterpolation(environment: environment)
            .apply(to: RepositoryFiles.text("docker-compose.prod.yml"))
        return try #require(try Yams.compose(yaml: text))
    }

    private static func service(_ name: String) throws -> Node {
        try #require(try compose()["services"]?[name], "no service \(name)")
    }

    /// A service's environment, from either of compose's forms (mapping or `KEY=value` list).
    private static func environment(of service: Node) -> [String: String] {
        if let mapping = service["environment"]?.mapping {
            return Dictionary(
                mapping.compactMap { key, value in key.string.map { ($0, value.string ?? "") } },
                uniquingKeysWith: { first, _ in first })
        }
        let list = service["environment"]?.array(of: String.self) ?? []
        return Dictionary(
            list.map { entry in
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { first, _ in first })
    }

    private static func healthcheckCommand(of service: Node) -> [String] {
        service["healthcheck"]?["test"]?.array(of: String.self) ?? []
    }

    private static func dependencies(of service: Node) -> [String: String] {
        guard let mapping = service["depends_on"]?.mapping else { return [:] }
        return Dictionary(
            mapping.compactMap { key, value in key.string.map { ($0, value["condition"]?.string ?? "") } },
            uniquingKeysWith: { first, _ in first })
    }

    @Test func namesTheDatabaseTheThreeBrokersAndTheThreeServices() throws {
        let services = try #require(try Self.compose()["services"]?.mapping)
        let names = Set(services.keys.compactMap(\.string))
        #expect(names == Set(["postgres"] + Self.brokers + Self.applications.map(\.name)))
    }

    @Test func refusesToStartWithoutItsSecrets() throws {
        let text = try RepositoryFiles.text("docker-compose.prod.yml")
        #expect(Set(try ComposeInterpolation.requiredVariables(in: text)) == Set(Self.secrets.keys))
        for name in Self.secrets.keys {
            var environment = Self.secrets
            environment[name] = nil
            #expect(throws: ComposeInterpolation.MissingVariable.self, "\(name) unset") {
                try ComposeInterpolation(environment: environment).apply(to: text)
            }
        }
    }

    @Test(arguments: applications)
    func runsTwoInstancesOfEachServiceFromTheImage(_ application: Application) throws {
        let service = try Self.service(application.name)
        #expect(service["build"] != nil, "built from the Dockerfile")
        #expect(service["command"]?.array(of: String.self) == [application.name])
        #expect(service["deploy"]?["replicas"]?.int == 2)
        #expect(service["restart"]?.string == "unless-stopped")
        let images = Set(try Self.applications.map { try Self.service($0.name)["image"]?.string ?? "" })
        #expect(images.count == 1 && images.first?.isEmpty == false, "one image for every service")
    }

    @Test(arguments: applications)
    func connectsToEveryBrokerNodeOnQuorumQueues(_ application: Application) throws {
        let environment = Self.environment(of: try Self.service(application.name))
        #expect(environment["AMQP_QUEUE_TYPE"] == "quorum")
        let urls = try #require(environment["RABBITMQ_URL"]).split(separator: ",").map(String.init)
        #expect(urls.count == Self.brokers.count)
        for (url, broker) in zip(urls, Self.brokers) {
            let components = try #require(URLComponents(string: url), "\(url)")
            #expect(components.scheme == "amqp")
            #expect(components.host == broker)
            #expect(components.port == 5672)
            #expect(components.percentEncodedPath == "/%2f")
            // The credentials the brokers were given.
            let brokerEnvironment = Self.environment(of: try Self.service(broker))
            #expect(components.user == brokerEnvironment["RABBITMQ_DEFAULT_USER"])
            #expect(components.password == brokerEnvironment["RABBITMQ_DEFAULT_PASS"])
        }
    }

    @Test(arguments: applications)
    func usesPostgreSQLForItsDatabase(_ application: Application) throws {
        let environment = Self.environment(of: try Self.service(application.name))
        let postgres = Self.environment(of: try Self.service("postgres"))
        for variable in ["USER_DB_URL", "ORDER_DB_URL"] where variable != application.database?.variable {
            #expect(environment[variable] == nil, "\(variable) belongs to another service")
        }
        guard let database = application.database else { return }
        let url = try #require(environment[database.variable])
        let components = try #require(URLComponents(string: url))
        #expect(components.scheme == "postgres")
        #expect(components.host == "postgres")
        #expect(components.port == 5432)
        #expect(components.path == "/\(database.name)")
        #expect(components.user == postgres["POSTGRES_USER"])
        #expect(components.password == postgres["POSTGRES_PASSWORD"])
    }

    @Test(arguments: applications)
    func listensOnAllInterfacesAndIsHealthyWhenReady(_ application: Application) throws {
        let service = try Self.service(application.name)
        let environment = Self.environment(of: service)
        #expect(environment["HTTP_HOST"] == "0.0.0.0")
        #expect(environment["HTTP_PORT"] == "\(application.port)")
        let check = Self.healthcheckCommand(of: service)
        #expect(check.first == "CMD")
        #expect(check.contains("http://127.0.0.1:\(application.port)/readyz"))
        #expect(check.contains("-f") || check.contains("-fsS"), "curl must fail on a 503")
    }

    @Test(arguments: applications)
    func startsOnceTheDatabaseAndEveryBrokerAreHealthy(_ application: Application) throws {
        let dependencies = Self.dependencies(of: try Self.service(application.name))
        for broker in Self.brokers {
            #expect(dependencies[broker] == "service_healthy", "\(broker)")
        }
        if application.database != nil {
            #expect(dependencies["postgres"] == "service_healthy")
        }
    }

    @Test func publishesOneUserAPIPortPerInstance() throws {
        let service = try Self.service("user-service")
        let ports = service["ports"]?.array(of: String.self) ?? []
        let mapping = try #require(ports.first { $0.hasSuffix(":8000") }, "\(ports)")
        let hostRange = mapping.dropLast(":8000".count).split(separator: "-").compactMap { Int($0) }
        let replicas = try #require(service["deploy"]?["replicas"]?.int)
        #expect(hostRange.count == 2 && hostRange[1] - hostRange[0] + 1 >= replicas, "\(mapping)")
        for name in ["notification-service", "order-service"] {
            #expect(try Self.service(name)["ports"] == nil, "\(name) is internal")
        }
    }

    @Test func formsOneRabbitMQClusterOfTheThreeNodes() throws {
        let compose = try Self.compose()
        let configuration = try #require(compose["configs"]?["rabbitmq-cluster"]?["content"]?.string)
        #expect(configuration.contains("cluster_formation.peer_discovery_backend = classic_config"))
        let listed = configuration.split(separator: "\n")
            .filter { $0.hasPrefix("cluster_formation.classic_config.nodes.") }
            .compactMap { $0.split(separator: "=").last?.trimmingCharacters(in: .whitespaces) }
        #expect(listed == Self.brokers.map { "rabbit@\($0)" })

        var cookies: Set<String> = []
        for broker in Self.brokers {
            let service = try Self.service(broker)
            #expect(service["image"]?.string?.hasPrefix("rabbitmq:3.") == true)
            #expect(service["hostname"]?.string == broker, "the node is rabbit@\(broker)")
            let environment = Self.environment(of: service)
            cookies.insert(environment["RABBITMQ_ERLANG_COOKIE"] ?? "")
            let mounts = service["configs"]?.sequence ?? []
            #expect(mounts.contains {
                $0["source"]?.string == "rabbitmq-cluster"
                    && $0["target"]?.string?.hasPrefix("/etc/rabbitmq/conf.d/") == true
            })
            #expect(Self.healthcheckCommand(of: service).contains("rabbitmq-diagnostics"))
            #expect(service["volumes"]?.sequence?.isEmpty == false, "\(broker) keeps its data")
            if broker != Self.brokers[0] {
                #expect(Self.dependencies(of: service)[Self.brokers[0]] == "service_healthy", "\(broker)")
            }
        }
        #expect(cookies.count == 1 && cookies.first?.isEmpty == false, "one shared Erlang cookie")
    }

    @Test func providesTheUsersAndOrdersDatabases() throws {
        let compose = try Self.compose()
        let postgres = try Self.service("postgres")
        #expect(postgres["image"]?.string?.hasPrefix("postgres:") == true)
        let environment = Self.environment(of: postgres)
        #expect(environment["POSTGRES_DB"] == "users")
        let initScripts = (postgres["configs"]?.sequence ?? []).filter {
            $0["target"]?.string?.hasPrefix("/docker-entrypoint-initdb.d/") == true
        }
        let created = try initScripts.map { mount in
            let source = try #require(mount["source"]?.string)
            return try #require(compose["configs"]?[source]?["content"]?.string)
        }.joined()
        #expect(created.contains("CREATE DATABASE orders"))
        #expect(Self.healthcheckCommand(of: postgres).contains("pg_isready"))
        #expect(postgres["volumes"]?.sequence?.isEmpty == false, "PostgreSQL keeps its data")
    }

    @Test func interpolationReadsComposeVariablesAsComposeDoes() throws {
        let interpolation = ComposeInterpolation(environment: ["SET": "x", "EMPTY": ""])
        #expect(try interpolation.apply(to: "a${SET}b$${SET}c") == "axb${SET}c")
        #expect(try interpolation.apply(to: "${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}") == "d d  d")
        #expect(throws: ComposeInterpolation.MissingVariable.self) { try interpolation.apply(to: "${EMPTY:?no}") }
        #expect(try interpolation.apply(to: "${EMPTY?no}") == "")
    }
}

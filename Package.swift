// swift-tools-version: 6.0
import PackageDescription

// The tree reads as the architecture, bottom up:
//   Sources/Foundations  C shims (CSQLite, CRabbitMQ); the event codec every service shares (EventCodec: event types,
//                        their JSON scanner and writer, timestamps, limits; no dependencies); queue and header names,
//                        trace context and log escaping (Common)
//   Sources/Platform     infrastructure with no business rules: SQLiteStorage, PostgresStorage, Messaging (AMQP),
//                        HTTPServer
//   Sources/Runtime      how a service process runs: ServiceRuntime (options, life cycle, health, metrics), and
//                        Delivery (when a consumed message is acked, retried or dead-lettered)
//   Sources/Services     the three services' logic, as libraries
//   Sources/Executables  thin `main`s over the service libraries
//   Sources/Tools        operator and benchmark commands
//   Tests/Unit           tests that need no broker and no database server (`make test-unit`)
//   Tests/Integration    tests against a real RabbitMQ node and the real executables
//   Tests/Support        helpers shared by the tests

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-user-events",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "user-service", targets: ["user-service"]),
        .executable(name: "notification-service", targets: ["notification-service"]),
        .executable(name: "order-service", targets: ["order-service"]),
        .executable(name: "requeue-dead-letters", targets: ["requeue-dead-letters"]),
        .executable(name: "user-events-bench", targets: ["user-events-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // MARK: Foundations
        .systemLibrary(
            name: "CSQLite", path: "Sources/Foundations/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        .systemLibrary(
            name: "CRabbitMQ", path: "Sources/Foundations/CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]),
        library("EventCodec", in: "Foundations", dependencies: []),
        library("Common", in: "Foundations", dependencies: [logging]),

        // MARK: Platform
        library("SQLiteStorage", in: "Platform", dependencies: ["CSQLite", logging, metrics]),
        library("PostgresStorage", in: "Platform", dependencies: [postgres, logging, serviceLifecycle]),
        library("Messaging", in: "Platform", dependencies: ["CRabbitMQ", metrics, logging, serviceLifecycle]),
        library("HTTPServer", in: "Platform", dependencies: ["Common", nio("NIOCore"), nio("NIOPosix"), nio("NIOHTTP1"), logging, serviceLifecycle]),

        // MARK: Runtime
        library(
            "ServiceRuntime", in: "Runtime",
            dependencies: [
                "Messaging", "HTTPServer", "PostgresStorage", metrics, nio("NIOHTTP1"), logging, serviceLifecycle,
                argumentParser, .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]),
        library(
            "Delivery", in: "Runtime",
            dependencies: ["Common", "EventCodec", "Messaging", "ServiceRuntime", metrics, logging, serviceLifecycle]),
        // The one assembly path of every service: its parts, health, metrics, the HTTP server, store selection.
        library(
            "ServiceKit", in: "Runtime",
            dependencies: [
                "Common", "Delivery", "Messaging", "HTTPServer", "PostgresStorage", "ServiceRuntime", logging,
                serviceLifecycle,
            ]),

        // MARK: Services
        .target(
            name: "UserService", dependencies: serviceDependencies + ["PostgresStorage", postgres], path: "Sources/Services/UserService",
            resources: [.copy("openapi.json")], swiftSettings: upcoming),
        library("NotificationService", in: "Services", dependencies: serviceDependencies + ["Delivery", yams]),
        library("OrderService", in: "Services", dependencies: serviceDependencies + ["Delivery", "PostgresStorage", postgres]),

        // MARK: Executables
        executable("user-service", in: "Executables", dependencies: ["UserService", argumentParser]),
        executable("notification-service", in: "Executables", dependencies: ["NotificationService", argumentParser]),
        executable("order-service", in: "Executables", dependencies: ["OrderService", argumentParser]),

        // MARK: Tools
        executable(
            "requeue-dead-letters", in: "Tools",
            dependencies: ["Common", "EventCodec", "Messaging", "Delivery", "ServiceRuntime", logging, argumentParser]),
        // The broker's own ceiling in C on rabbitmq-c alone, so the yardstick does not include our client.
        .target(name: "CBrokerCeiling", dependencies: ["CRabbitMQ"], path: "Sources/Tools/CBrokerCeiling"),
        library(
            "Benchmark", in: "Tools",
            dependencies: ["Common", "EventCodec", "SQLiteStorage", "Messaging", "CBrokerCeiling", logging, .product(name: "Histogram", package: "hdrhistogram-swift")]),
        executable("user-events-bench", in: "Tools", dependencies: ["Benchmark", argumentParser]),

        // MARK: Tests
        // Generic helpers (waiting, files, ports, processes, HTTP, Prometheus text): usable by unit tests.
        support("TestSupport", dependencies: [logging, serviceLifecycle]),
        // A private RabbitMQ node and what needs one: integration tests only.
        support("BrokerTestSupport", dependencies: ["TestSupport", "Messaging", "CRabbitMQ", logging]),
        // A private PostgreSQL server (one per test process, a fresh database per test): integration tests only.
        support("DatabaseTestSupport", dependencies: ["TestSupport"]),
        // The store conformance cases, written once, run by a SQLite (unit) and a PostgreSQL (integration) target.
        support(
            "StoreConformance",
            dependencies: [
                "UserService", "OrderService", "Common", "EventCodec", "PostgresStorage", "TestSupport", "DatabaseTestSupport",
                logging, serviceLifecycle,
            ]),

        test("CommonTests", in: "Unit", dependencies: ["Common", "EventCodec", logging]),
        test("SQLiteStorageTests", in: "Unit", dependencies: ["SQLiteStorage", "TestSupport", logging, metrics, metricsTestKit]),
        test(
            "UserServiceTests", in: "Unit",
            dependencies: [
                "UserService", "Common", "EventCodec", "SQLiteStorage", "Messaging", "HTTPServer", "ServiceKit", "ServiceRuntime",
                "TestSupport", logging, nio("NIOHTTP1"),
            ]),
        test(
            "HTTPServerTests", in: "Unit", dependencies: ["HTTPServer", "TestSupport", nio("NIOEmbedded"), nio("NIOPosix")]),
        test("MessagingUnitTests", in: "Unit", dependencies: ["Messaging"]),
        test(
            "FuzzTests", in: "Unit",
            dependencies: [
                "Common", "EventCodec", "NotificationService", "HTTPServer", "Messaging", "CRabbitMQ", "BrokerTestSupport",
                nio("NIOCore"), nio("NIOEmbedded"), nio("NIOHTTP1"), nio("NIOPosix"), logging,
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        test("BenchmarkTests", in: "Unit", dependencies: ["Benchmark", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        test(
            "ServiceRuntimeTests", in: "Unit",
            dependencies: [
                "ServiceRuntime", "Messaging", "TestSupport", argumentParser, logging, metrics, metricsTestKit,
                serviceLifecycle,
            ]),
        test("NotificationServiceTests", in: "Unit", dependencies: ["NotificationService", "Common", "EventCodec", "Messaging", logging]),
        test("DeliveryTests", in: "Unit", dependencies: ["Delivery", "Messaging", "Common", "EventCodec", metrics, metricsTestKit, logging]),
        test(
            "OrderServiceTests", in: "Unit",
            dependencies: [
                "OrderService", "Delivery", "Messaging", "Common", "EventCodec", "SQLiteStorage", "ServiceKit",
                "ServiceRuntime", "HTTPServer", "TestSupport", metrics, metricsTestKit, logging,
            ]),
        test("StoreConformanceSQLiteTests", in: "Unit", dependencies: ["StoreConformance"]),
        test("ExecutableTests", in: "Unit", dependencies: ["TestSupport"]),
        test("DeploymentFilesTests", in: "Unit", dependencies: ["TestSupport", yams]),

        test(
            "MessagingTests", in: "Integration",
            dependencies: ["Messaging", "TestSupport", "BrokerTestSupport", serviceLifecycle]),
        test(
            "ServiceTests", in: "Integration",
            dependencies: [
                "UserService", "NotificationService", "OrderService", "ServiceRuntime", "ServiceKit", "Delivery", "TestSupport",
                "BrokerTestSupport", "Messaging", "HTTPServer", metrics, nio("NIOHTTP1"), logging,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        test("StoreConformancePostgresTests", in: "Integration", dependencies: ["StoreConformance"]),
        test(
            "ScaledStoreTests", in: "Integration",
            dependencies: [
                "UserService", "OrderService", "Common", "EventCodec", "Messaging", "PostgresStorage", "StoreConformance",
                "DatabaseTestSupport", "BrokerTestSupport", "TestSupport", logging, serviceLifecycle,
            ]),
        test("BenchmarkCeilingTests", in: "Integration", dependencies: ["Benchmark", "Messaging", "BrokerTestSupport"]),
        test(
            "EndToEndTests", in: "Integration",
            dependencies: ["Common", "EventCodec", "SQLiteStorage", "Messaging", "TestSupport", "BrokerTestSupport"]),
        // The executables as processes, several instances each, on PostgreSQL and (the chaos test) a 3-node cluster.
        test(
            "ScaledSystemTests", in: "Integration",
            dependencies: ["Common", "EventCodec", "Messaging", "TestSupport", "BrokerTestSupport", "DatabaseTestSupport", logging]),
    ]
)

/// A library target in `Sources/<layer>/<name>`.
func library(_ name: String, in layer: String, dependencies: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: dependencies, path: "Sources/\(layer)/\(name)", swiftSettings: upcoming)
}

/// An executable target in `Sources/<layer>/<name>`.
func executable(_ name: String, in layer: String, dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: dependencies, path: "Sources/\(layer)/\(name)", swiftSettings: upcoming)
}

/// A library of test helpers in `Tests/Support/<name>`.
func support(_ name: String, dependencies: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: dependencies, path: "Tests/Support/\(name)", swiftSettings: upcoming)
}

/// A test target in `Tests/<kind>/<name>`.
func test(_ name: String, in kind: String, dependencies: [Target.Dependency]) -> Target {
    .testTarget(name: name, dependencies: dependencies, path: "Tests/\(kind)/\(name)", swiftSettings: upcoming)
}

func nio(_ product: String) -> Target.Dependency { .product(name: product, package: "swift-nio") }
var argumentParser: Target.Dependency { .product(name: "ArgumentParser", package: "swift-argument-parser") }
var metrics: Target.Dependency { .product(name: "Metrics", package: "swift-metrics") }
var metricsTestKit: Target.Dependency { .product(name: "MetricsTestKit", package: "swift-metrics") }
var logging: Target.Dependency { .product(name: "Logging", package: "swift-log") }
var serviceLifecycle: Target.Dependency { .product(name: "ServiceLifecycle", package: "swift-service-lifecycle") }
var postgres: Target.Dependency { .product(name: "PostgresNIO", package: "postgres-nio") }
var yams: Target.Dependency { .product(name: "Yams", package: "Yams") }

var serviceDependencies: [Target.Dependency] {
    ["Common", "EventCodec", "SQLiteStorage", "Messaging", "HTTPServer", "ServiceRuntime", "ServiceKit", metrics, nio("NIOHTTP1"), logging, serviceLifecycle, argumentParser]
}

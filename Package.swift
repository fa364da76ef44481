// swift-tools-version: 6.0
import PackageDescription

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
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        .systemLibrary(
            name: "CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]),

        .target(
            name: "Common",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: upcoming),
        .target(
            name: "Storage",
            dependencies: ["CSQLite", .product(name: "Logging", package: "swift-log"), metrics],
            swiftSettings: upcoming),
        .target(
            name: "Messaging",
            dependencies: [
                "CRabbitMQ", metrics,
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming),
        .target(
            name: "HTTPServer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming),

        .target(
            name: "ServiceRuntime",
            dependencies: [
                "Common", "Messaging", "HTTPServer", metrics,
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: upcoming),
        .target(
            name: "UserService",
            dependencies: serviceDependencies,
            resources: [.copy("openapi.json")],
            swiftSettings: upcoming),
        .target(
            name: "NotificationService",
            dependencies: serviceDependencies + [.product(name: "Yams", package: "Yams")],
            swiftSettings: upcoming),
        .target(
            name: "OrderService",
            dependencies: serviceDependencies,
            swiftSettings: upcoming),

        .executableTarget(name: "user-service", dependencies: ["UserService", argumentParser], swiftSettings: upcoming),
        .executableTarget(
            name: "notification-service", dependencies: ["NotificationService", argumentParser],
            swiftSettings: upcoming),
        .executableTarget(name: "order-service", dependencies: ["OrderService", argumentParser], swiftSettings: upcoming),
        .executableTarget(
            name: "requeue-dead-letters", dependencies: ["ServiceRuntime", argumentParser], swiftSettings: upcoming),

        .target(
            name: "Benchmark",
            dependencies: [
                "Common", "Storage", "Messaging",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming),
        .executableTarget(
            name: "user-events-bench", dependencies: ["Benchmark", argumentParser], swiftSettings: upcoming),

        .target(
            name: "TestSupport",
            dependencies: ["Common", "Messaging", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: upcoming),
        .testTarget(name: "CommonTests", dependencies: ["Common"], swiftSettings: upcoming),
        .testTarget(
            name: "BenchmarkTests",
            dependencies: ["Benchmark", .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: upcoming),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "TestSupport"], swiftSettings: upcoming),
        .testTarget(name: "MessagingTests", dependencies: ["Messaging", "TestSupport"], swiftSettings: upcoming),
        .testTarget(
            name: "HTTPServerTests",
            dependencies: [
                "HTTPServer", "TestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: upcoming),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "UserService", "NotificationService", "OrderService", "ServiceRuntime", "TestSupport",
                "Messaging", "HTTPServer", argumentParser, metrics,
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: upcoming),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Common", "Storage", "Messaging", "TestSupport"],
            swiftSettings: upcoming),
    ]
)

var argumentParser: Target.Dependency { .product(name: "ArgumentParser", package: "swift-argument-parser") }
var metrics: Target.Dependency { .product(name: "Metrics", package: "swift-metrics") }

var serviceDependencies: [Target.Dependency] {
    [
        "Common", "Storage", "Messaging", "HTTPServer", "ServiceRuntime", metrics,
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]
}

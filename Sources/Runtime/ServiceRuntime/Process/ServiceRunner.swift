public import Logging
import ServiceLifecycle
import Messaging
import UnixSignals
import Foundation

/// Starting and stopping a service process.
public enum ServiceRunner {
    /// Routes every logger to stderr at `level`, one line per event. Call once, from `main`.
    public static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// How long each broker connection may take to stop (`BrokerConfiguration.shutdownTimeout`) within a grace
    /// period: a quarter of it, which ``run(_:gracePeriod:logger:)`` keeps free at the end.
    public static func connectionShutdownTimeout(gracePeriod: Duration) -> Duration {
        gracePeriod / 4
    }

    /// Runs `services` until SIGTERM or SIGINT, then shuts them down gracefully, stage by stage in the order
    /// ``ServiceStages`` describes. Whatever has not finished by 70% of `gracePeriod` is cancelled, so that broker
    /// connections, which stop within ``connectionShutdownTimeout(gracePeriod:)`` once cancelled (confirms, close
    /// handshake, and a cut socket if the broker does not read), are closed before `gracePeriod` is over. A second
    /// signal exits at once (status 130), for an operator who will not wait.
    public static func run(
        _ services: ServiceStages, gracePeriod: Duration = .seconds(10), logger: Logger
    ) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services.inStartOrder.map { .init(service: $0) }, gracefulShutdownSignals: [],
            cancellationSignals: [], logger: logger)
        configuration.maximumGracefulShutdownDuration = gracePeriod * 0.7
        let group = ServiceGroup(configuration: configuration)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let watcher = Task {
            var received = 0
            for await signal in signals {
                received += 1
                if received == 1 {
                    logger.notice("\(signal) received: finishing in-flight work, then stopping (again to stop now)")
                    await group.triggerGracefulShutdown()
                } else {
                    logger.warning("\(signal) received again: exiting now")
                    Foundation.exit(130)
                }
            }
        }
        defer { watcher.cancel() }
        try await group.run()
        logger.info("stopped")
    }

    /// Prints a configuration error as one line on stderr and exits with status 78 (EX_CONFIG).
    public static func exit(configurationError error: ConfigurationError) -> Never {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        Foundation.exit(78)
    }

    /// A service process from start to exit. `configure` turns the resolved common settings (and the environment)
    /// into the service's configuration, throwing `ConfigurationError` for a bad setting; then logging and metrics
    /// start, `assemble` builds the services (an error there, such as a database that cannot be opened, is
    /// reported against `assemblySetting`), and they run until SIGTERM or SIGINT. A configuration error ends the
    /// process with one line and status 78, and so does a queue that exists with another type than the one declared
    /// (``MessagingError/Code/queueConflict``). `defaultHost` is where the HTTP listener binds without `HTTP_HOST`:
    /// loopback unless the service's HTTP API is meant for other machines.
    public static func serve<Configuration>(
        _ label: String, options: CommonOptions, defaultPort: Int, defaultHost: String = Setting.loopback,
        configure: (CommonSettings, [String: String]) throws -> Configuration,
        describe: (Configuration) -> Logger.Metadata,
        assemblySetting: String,
        assemble: (Configuration, Logger) throws -> ServiceStages
    ) async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings: CommonSettings
        let configuration: Configuration
        do {
            settings = try options.resolve(defaultPort: defaultPort, defaultHost: defaultHost, environment: environment)
            configuration = try configure(settings, environment)
        } catch let error as ConfigurationError {
            exit(configurationError: error)
        }
        bootstrapLogging(level: settings.logLevel)
        ServiceMetrics.bootstrap()
        let logger = Logger(label: label)
        let services: ServiceStages
        do {
            services = try assemble(configuration, logger)
        } catch {
            exit(configurationError: ConfigurationError(setting: assemblySetting, problem: "\(error)"))
        }
        var metadata = describe(configuration)
        metadata["broker"] = "\(settings.broker.redactedURL)"
        metadata["queue_type"] = "\(settings.broker.queueType)"
        logger.info("starting", metadata: metadata)
        do {
            try await run(services, gracePeriod: settings.gracePeriod, logger: logger)
        } catch let error as MessagingError where error.code == .queueConflict {
            // A queue of another type: no retry can fix it, so the process stops with the one line saying what to do.
            FileHandle.standardError.write(Data(("error: " + error.detail + "\n").utf8))
            Foundation.exit(78)
        }
    }
}

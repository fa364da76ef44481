import Foundation
import TestSupport

/// A throwaway PKI made with the `openssl` command in a temporary directory: a self-signed CA, a server certificate
/// for `localhost` and `127.0.0.1` and a client certificate signed by it, and an unrelated second CA. EC P-256 keys
/// (fast to make), PEM files, unencrypted keys, valid for two days.
public struct TestCertificates: Sendable {
    /// The directory holding every file.
    public let directory: String
    /// The CA that signed the server and client certificates.
    public var caFile: String { directory + "/ca.pem" }
    /// Another self-signed CA that signed nothing here: trusting only it must fail verification.
    public var otherCAFile: String { directory + "/other-ca.pem" }
    /// The broker's certificate (SAN `DNS:localhost`, `IP:127.0.0.1`).
    public var serverCertificateFile: String { directory + "/server.pem" }
    /// The broker's key.
    public var serverKeyFile: String { directory + "/server.key" }
    /// A client certificate (extended key usage `clientAuth`).
    public var clientCertificateFile: String { directory + "/client.pem" }
    /// The client certificate's key.
    public var clientKeyFile: String { directory + "/client.key" }

    /// Makes the files; throws with openssl's output if a command fails (or `openssl` is not installed).
    public static func make() async throws -> TestCertificates {
        let certificates = TestCertificates(directory: try temporaryDirectory("tls"))
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try certificates.generate() })
            }
        }
        return certificates
    }

    private static let configuration = """
        [req]
        distinguished_name = subject
        prompt = no
        [subject]
        [ca]
        basicConstraints = critical, CA:TRUE
        keyUsage = critical, keyCertSign, cRLSign
        subjectKeyIdentifier = hash
        [server]
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1
        authorityKeyIdentifier = keyid
        [client]
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = clientAuth
        authorityKeyIdentifier = keyid

        """

    private func generate() throws {
        let config = directory + "/openssl.cnf"
        try Self.configuration.write(toFile: config, atomically: true, encoding: .utf8)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for (name, subject) in [("ca", "/CN=swift-user-events test CA"), ("other-ca", "/CN=unrelated test CA")] {
            try openssl(
                ["req", "-x509", "-config", config, "-extensions", "ca"] + newKey
                    + ["-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem", "-days", "2",
                        "-subj", subject])
        }
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=swift-user-events test client")] {
            try openssl(
                ["req", "-new", "-config", config] + newKey
                    + ["-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr", "-subj", subject])
            try openssl([
                "x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", caFile, "-CAkey", "\(directory)/ca.key",
                "-set_serial", name == "server" ? "1001" : "1002", "-days", "2", "-extfile", config,
                "-extensions", name, "-out", "\(directory)/\(name).pem",
            ])
        }
    }

    private func openssl(_ arguments: [String]) throws {
        let outcome = try runProcessBlocking(["/usr/bin/env", "openssl"] + arguments)
        guard outcome.status == 0 else {
            throw TestFailure(
                "openssl \(arguments.prefix(2).joined(separator: " ")) failed (\(outcome.status)): "
                    + outcome.output + outcome.errors)
        }
    }

    /// `rabbitmq.conf` lines for a TLS listener on `127.0.0.1:port` with this server certificate, trusting this CA
    /// for client certificates; `requireClientCertificate` sets `verify_peer` with `fail_if_no_peer_cert`.
    public func brokerConfiguration(port: Int, requireClientCertificate: Bool) -> [String] {
        [
            "listeners.ssl.default = 127.0.0.1:\(port)",
            "ssl_options.cacertfile = \(caFile)",
            "ssl_options.certfile = \(serverCertificateFile)",
            "ssl_options.keyfile = \(serverKeyFile)",
            "ssl_options.verify = \(requireClientCertificate ? "verify_peer" : "verify_none")",
            "ssl_options.fail_if_no_peer_cert = \(requireClientCertificate)",
        ]
    }
}

// A real TLS ClientHello, as this Node's TLS stack writes it for tls.connect({ servername }),
// captured in memory (the TLS socket writes into a stream of the test's, no network).
import { Duplex } from 'node:stream';
import { connect } from 'node:tls';

/** The first bytes a TLS client sends: its ClientHello record(s). No SNI when servername is ''. */
export function captureClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        callback();
        // The hello is flushed in one write (during connect: destroy after it returns);
        // nothing else comes before the server answers.
        resolve(Buffer.from(chunk));
        setImmediate(() => client.destroy());
      },
    });
    const client = connect({ socket: wire, servername, rejectUnauthorized: false });
    client.once('error', reject);
  });
}

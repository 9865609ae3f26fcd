// The seed scenario with MQTT.js over WebSockets, run by tests/tls_interop.rs.
//
//   node lwt.js ws://127.0.0.1:PORT            (--ws with --dev: usernames)
//   node lwt.js wss://localhost:PORT CERTDIR   (--wss: certificates from `topicgate certs init`)
//
// actuator1 (MQTT 3.1.1) subscribes to clients/+/status; sensor1 (MQTT 5) connects
// with a will, publishes `online`, is refused a publish to another sensor's topic,
// then its socket is destroyed without DISCONNECT. Prints one line per event;
// exits 0 once the will arrived, 1 on any error or after 10 s.
'use strict';
const fs = require('fs');
const path = require('path');
const mqtt = require('mqtt');

const [url, certDir] = process.argv.slice(2);

function options(name, extra) {
  const o = { clientId: `js-${name}`, reconnectPeriod: 0, connectTimeout: 5000, ...extra };
  if (certDir) {
    o.ca = fs.readFileSync(path.join(certDir, 'ca.pem'));
    o.cert = fs.readFileSync(path.join(certDir, 'clients', `${name}.pem`));
    o.key = fs.readFileSync(path.join(certDir, 'clients', `${name}.key`));
    o.rejectUnauthorized = true;
  } else {
    o.username = name;
  }
  return o;
}

function fail(why) {
  console.log(`error ${why}`);
  process.exit(1);
}

setTimeout(() => fail('timeout'), 10000);

async function main() {
  const actuator = await mqtt.connectAsync(url, options('actuator1', { protocolVersion: 4 }));
  let onlineSeen;
  const online = new Promise((resolve) => (onlineSeen = resolve));
  actuator.on('message', (topic, payload) => {
    console.log(`${topic} ${payload.toString()}`);
    if (payload.toString() === 'online') onlineSeen();
    if (payload.toString() === 'offline') {
      actuator.end(false, {}, () => process.exit(0));
    }
  });
  const granted = await actuator.subscribeAsync('clients/+/status', { qos: 1 });
  console.log(`granted ${granted.map((g) => g.qos).join(',')}`);

  const sensor = await mqtt.connectAsync(
    url,
    options('sensor1', {
      protocolVersion: 5,
      will: { topic: 'clients/sensor1/status', payload: Buffer.from('offline'), qos: 1, retain: false },
    }),
  );
  await sensor.publishAsync('clients/sensor1/status', 'online', { qos: 1 });
  await online;
  try {
    await sensor.publishAsync('clients/sensor2/status', 'spoof', { qos: 1 });
    fail('spoofed publish accepted');
  } catch (e) {
    console.log(`denied ${e.code}`);
  }
  // Kill the sensor's connection without DISCONNECT: the broker publishes its will.
  sensor.stream.destroy();
}

main().catch((e) => fail(e.message));

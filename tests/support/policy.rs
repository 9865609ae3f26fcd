//! Real compiled policies for the tests: YAML text through the compiler.

use std::sync::Arc;
use topicgate::analysis::rules::rule_for;
use topicgate::compiler::{compile_text, load::from_compilation, CompiledPolicy};
use topicgate::decisions::access::AccessPolicy;

/// The seed scenario (policies/lwt.yaml) plus `admin`/`admin2` (publish and
/// subscribe everything) and a Disabled client. `sensors_publish` false drops the
/// sensors' publisher binding (a "reloaded" policy). `password_hash` goes to sensor1.
pub fn lwt_yaml(sensors_publish: bool, password_hash: Option<&str>) -> String {
    let auth = password_hash
        .map(|h| format!("\n    authentication: {{ passwordHash: \"{h}\" }}"))
        .unwrap_or_default();
    let sensors_pub = if sensors_publish {
        "  sensors-pub:\n    clientGroup: sensors\n    topicSpace: lwt-pub\n    permission: publisher\n"
    } else {
        ""
    };
    format!(
        r##"namespace: broker-tests
clients:
  sensor1:
    attributes: {{ type: sensor }}{auth}
  sensor2:
    attributes: {{ type: sensor }}
  actuator1:
    attributes: {{ type: actuator }}
  actuator2:
    attributes: {{ type: actuator }}
  admin:
    attributes: {{ type: admin }}
  admin2:
    attributes: {{ type: admin }}
  disabled1:
    state: Disabled
    attributes: {{ type: admin }}
clientGroups:
  sensors:
    query: attributes.type = 'sensor'
  actuators:
    query: attributes.type = 'actuator'
  admins:
    query: attributes.type = 'admin'
topicSpaces:
  lwt-pub:
    topicTemplates: [ "clients/${{client.authenticationName}}/status" ]
  lwt-sub:
    topicTemplates: [ "clients/+/status" ]
  everything:
    topicTemplates: [ "#" ]
permissionBindings:
{sensors_pub}  actuators-sub:
    clientGroup: actuators
    topicSpace: lwt-sub
    permission: subscriber
  admins-pub:
    clientGroup: admins
    topicSpace: everything
    permission: publisher
  admins-sub:
    clientGroup: admins
    topicSpace: everything
    permission: subscriber
"##
    )
}

/// Compiles YAML text as `topicgate serve` does (front end and verifier); panics
/// with the diagnostics and the text when it has errors.
pub fn compile(yaml: &str) -> Arc<dyn AccessPolicy> {
    match from_compilation(compile_text("test.yaml", yaml, None)) {
        Ok(loaded) => Arc::new(loaded.policy),
        Err(e) => panic!("test policy does not compile: {e:?}\n{yaml}"),
    }
}

/// Compiles a YAML policy that must have no front-end errors. The verifier's errors
/// (a value that would change a template's shape, a type mismatch in a query) stop
/// [`compile`], but the decision tests exercise exactly how decisions treat such
/// policies, so the decision structure is built from the resolved policy directly.
pub fn compiled(yaml: &str) -> CompiledPolicy {
    let c = compile_text("test.yaml", yaml, None);
    let errors: Vec<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && rule_for(d.code).is_none())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    match c.resolved {
        Some(resolved) => CompiledPolicy::build(resolved, c.source_hash),
        None => panic!("policy does not resolve"),
    }
}

pub fn lwt() -> Arc<dyn AccessPolicy> {
    compile(&lwt_yaml(true, None))
}

/// An argon2 hash of `password` for a policy's `passwordHash`.
pub fn hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"topicgate-test-salt").expect("salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

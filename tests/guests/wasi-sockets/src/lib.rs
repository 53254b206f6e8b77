//! A component that imports `wasi:sockets`, which payhost never links;
//! loading it must fail with `LoadError::ForeignImport` naming the import.

wit_bindgen::generate!({ world: "sockets", path: "wit", generate_all });

struct Sockets;

impl Guest for Sockets {
    fn describe() -> String {
        let _network = wasi::sockets::instance_network::instance_network();
        "sockets".into()
    }
}

export!(Sockets);

//! A component that imports `evil:exfil/net`, which payhost does not
//! provide; loading it must fail with `LoadError::ForeignImport`.

wit_bindgen::generate!({ world: "foreign", path: "wit" });

struct Foreign;

impl Guest for Foreign {
    fn describe() -> String {
        evil::exfil::net::send("merchant keys, if we had any");
        "foreign".into()
    }
}

export!(Foreign);

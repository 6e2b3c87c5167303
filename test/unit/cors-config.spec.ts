import { expect } from "chai";
import { ConfigError, loadConfig } from "../../services/config.js";

describe("LARDER_CORS_ORIGINS", () => {
  it("none by default", () => {
    expect(loadConfig({}).corsOrigins).to.deep.equal([]);
  });

  it("a comma-separated list of exact origins", () => {
    expect(loadConfig({ LARDER_CORS_ORIGINS: "https://app.example.com, http://127.0.0.1:8080" }).corsOrigins).to.deep.equal([
      "https://app.example.com",
      "http://127.0.0.1:8080",
    ]);
  });

  for (const bad of ["*", "https://app.example.com/", "https://app.example.com/path", "app.example.com", "ftp://files.example.com"]) {
    it(`refuses '${bad}', naming the variable and the form`, () => {
      expect(() => loadConfig({ LARDER_CORS_ORIGINS: bad })).to.throw(ConfigError, /LARDER_CORS_ORIGINS lists exact origins/);
    });
  }
});
